"""A real headless Chromium driven over the DevTools protocol: open a page, record its console
errors, exceptions and network requests, evaluate expressions in it.

Chromium is Debian's package (``/usr/bin/chromium``, or ``$CHROMIUM``). Tests that need it skip
with the reason when it is absent, unless ``ALBENCH_REQUIRE_BROWSER=1`` (CI), where they fail.
The websocket client is aiohttp's (installed with ``ray[default]``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")


def chromium_path() -> str | None:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and Path(found).exists() else None


def require_chromium() -> str:
    """The Chromium binary; skips the test with the reason when it is absent (fails instead when
    ``ALBENCH_REQUIRE_BROWSER=1``)."""
    found = chromium_path()
    if found is None:
        reason = ("chromium not found (/usr/bin/chromium or $CHROMIUM); install Debian's chromium package "
                  "to run the browser checks")
        if os.environ.get("ALBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (ALBENCH_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return found


@dataclass
class PageLoad:
    url: str
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)


def open_page(url: str, expressions: dict[str, str], *, settle: float = 2.0, timeout: float = 90.0,
              width: int = 1400, height: int = 900, shots: dict[str, str] | None = None) -> PageLoad:
    """Load ``url`` in a fresh headless Chromium with a ``width`` x ``height`` viewport; once
    loaded (and ``settle`` seconds later), evaluate each of ``expressions`` (name -> JavaScript
    returning JSON-able data, awaited when it is a promise), then take each of ``shots`` (PNG
    path -> CSS selector of the element to capture; "viewport": the first screen)."""
    binary = require_chromium()
    profile = tempfile.mkdtemp(prefix="albench-chromium-")
    process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port = _devtools_port(Path(profile), process, timeout)
        return asyncio.run(asyncio.wait_for(_load(port, url, expressions, settle, (width, height), shots or {}),
                                            timeout))
    finally:
        _stop(process)
        _remove(profile)


def _stop(process: subprocess.Popen) -> None:
    """Stop Chromium and every process it started (its own session: renderers, utilities)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + 10  # the group's other members end after the browser
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _remove(profile: str) -> None:
    """Remove the profile folder; a helper process that outlived the group may still be writing
    into it for a moment (seen in CI: "Directory not empty" under ``Default``), so retry."""
    for _ in range(50):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(profile: Path, process: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    active = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with code {process.returncode} before its DevTools port opened")
        if active.exists():
            lines = active.read_text().splitlines()
            if lines and lines[0].strip().isdigit():
                return int(lines[0])
        time.sleep(0.1)
    raise RuntimeError("chromium's DevTools port did not open in time")


async def _load(port: int, url: str, expressions: dict[str, str], settle: float, size: tuple[int, int],
                shots: dict[str, str]) -> PageLoad:
    import aiohttp

    result = PageLoad(url)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            counter = iter(range(1, 10**9))
            pending: dict[int, asyncio.Future] = {}
            loaded = asyncio.Event()

            async def reader():
                async for message in ws:
                    data = json.loads(message.data)
                    if "id" in data and data["id"] in pending:
                        pending.pop(data["id"]).set_result(data)
                        continue
                    _event(result, data, loaded)

            task = asyncio.create_task(reader())

            async def call(method: str, **params):
                number = next(counter)
                future = asyncio.get_running_loop().create_future()
                pending[number] = future
                await ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
                answer = await future
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

            for domain in ("Runtime", "Log", "Network", "Page"):
                await call(f"{domain}.enable")
            await call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                       mobile=False)
            await call("Page.navigate", url=url)
            await loaded.wait()
            await asyncio.sleep(settle)
            for name, expression in expressions.items():
                answer = await call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
                result.values[name] = answer.get("result", {}).get("value")
            for path, selector in shots.items():
                await _shot(call, path, selector, size)
            task.cancel()
    return result


async def _shot(call, path: str, selector: str, size: tuple[int, int]) -> None:
    """A PNG of the element ``selector`` (its whole height), or of the first screen."""
    import base64

    if selector == "viewport":
        clip = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
    else:
        found = await call("Runtime.evaluate", returnByValue=True, expression=(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect(); "
            "return {x: 0, y: r.top + window.scrollY, width: document.documentElement.clientWidth, "
            "height: r.height, scale: 1}; })()"))
        clip = found["result"]["value"]
    shot = await call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
    Path(path).write_bytes(base64.b64decode(shot["data"]))


def _event(result: PageLoad, data: dict, loaded: asyncio.Event) -> None:
    method, params = data.get("method"), data.get("params", {})
    if method == "Network.requestWillBeSent":
        result.requests.append(params["request"]["url"])
    elif method == "Network.loadingFailed":
        result.failed.append(f"{params.get('errorText')}: {params.get('requestId')}")
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        result.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
    elif method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        result.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        result.console_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
    elif method == "Page.loadEventFired":
        loaded.set()
