"""A trial run's writes to an MLflow server as plain REST calls.

``RestRuns`` makes the requests ``MlflowClient`` makes for them (``runs/create``,
``runs/log-batch`` cut at MLflow's batch limits, ``runs/update``, ``runs/delete-tag``), with the
same JSON, the same credentials and MLflow's retry policy (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``..._BACKOFF_FACTOR``, ``..._TIMEOUT``: transient statuses and lost connections are retried,
POSTs included, as MLflow does), over one keep-alive connection per writer thread. What it saves
is the client's own work around each request (protobuf conversion, header providers, ``requests``):
about 9 of the 11 ms of driver CPU a trial's three calls cost (``bench/tracking.py``).

``for_store`` gives one only where that is all a request needs: an ``http(s)`` server with no
credentials, a user and password, or a token, reached without a proxy. Anything else (Databricks,
SigV4, an auth plugin, a client certificate, a proxy) keeps ``ClientRuns``: MLflow's client, the
same four operations."""

from __future__ import annotations

import base64
import http.client
import json
import math
import select
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import urlparse

from orchestrator.tracking.base import RunStatus

TRANSIENT = frozenset({429, 500, 502, 503, 504})
"""The statuses MLflow's client retries."""
METRICS_PER_REQUEST = 1000
"""MLflow's limits per ``log-batch``: 1000 metrics, 100 params, 100 tags, 1000 in all."""
PARAMS_TAGS_PER_REQUEST = 100
API = "/api/2.0/mlflow/"


def for_store(store, count: Callable[[str], None]) -> RestRuns | None:
    """A ``RestRuns`` for MLflow's REST store ``store``, or None where the client is needed."""
    get_creds = getattr(store, "get_host_creds", None)
    if get_creds is None:
        return None
    creds = get_creds()
    url = urlparse(creds.host or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        return None
    if (getattr(creds, "aws_sigv4", False) or getattr(creds, "auth", None)
            or getattr(creds, "client_cert_path", None) or getattr(creds, "use_databricks_sdk", False)):
        return None
    proxies = urllib.request.getproxies()
    if proxies.get(url.scheme) and not urllib.request.proxy_bypass(url.hostname):
        return None
    return RestRuns(creds, count)


def _number(value: float) -> float | str:
    """A metric value as protobuf's JSON writes a double (JSON has no NaN or infinities)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _pairs(items: dict[str, str]) -> list[dict]:
    return [{"key": k, "value": v} for k, v in items.items()]


def _refusal(endpoint: str, status: int, answer: bytes) -> Exception:
    """MLflow's exception for an answer that is not 200: the server's own error where it gave one."""
    from mlflow.exceptions import MlflowException, RestException

    try:
        error = json.loads(answer)
    except ValueError:
        error = None
    if isinstance(error, dict) and "error_code" in error:
        return RestException(error)
    return MlflowException(f"API request to {endpoint} failed with error code {status}: {answer[:400]!r}")


class RestRuns:
    """The REST calls of a trial run, made with ``http.client`` (thread-safe: one connection per
    thread)."""

    def __init__(self, creds, count: Callable[[str], None]) -> None:
        from mlflow.environment_variables import (
            MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
            MLFLOW_HTTP_REQUEST_MAX_RETRIES,
            MLFLOW_HTTP_REQUEST_TIMEOUT,
        )
        from mlflow.tracking.request_header.registry import resolve_request_headers

        url = urlparse(creds.host)
        self._https = url.scheme == "https"
        self._address = (url.hostname, url.port)
        self._base = url.path.rstrip("/") + API
        self._count = count
        self.retries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()
        self.backoff = MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()
        self.timeout = MLFLOW_HTTP_REQUEST_TIMEOUT.get()
        self._headers = {**resolve_request_headers(), "Content-Type": "application/json"}
        if creds.username and creds.password:  # MLflow's order (rest_utils): these, else a token
            basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        elif creds.token:
            self._headers["Authorization"] = f"Bearer {creds.token}"
        self._tls = None
        if self._https:
            self._tls = ssl.create_default_context(cafile=creds.server_cert_path or None)
            if creds.ignore_tls_verification:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._local = threading.local()
        self._aborted = threading.Event()

    def abort(self) -> None:
        """Stop retrying: every request in a retry wait, and every later one, fails at once."""
        self._aborted.set()

    # ---------------------------------------------------------------------------- operations
    def create_run(self, experiment_id: str, start_time: int | None, run_name: str | None,
                   tags: dict[str, str]) -> str:
        body = {"experiment_id": experiment_id, "user_id": tags.get("mlflow.user", "unknown"),
                "tags": _pairs(tags)}
        if start_time:
            body["start_time"] = start_time
        if run_name is not None:
            body["run_name"] = run_name
        return self.post("create_run", "runs/create", body)["run"]["info"]["run_id"]

    def log_batch(self, run_id: str, params: dict[str, str], metrics: list[tuple[str, float, int]],
                  tags: dict[str, str], timestamp: int) -> None:
        """In requests within MLflow's limits: params and tags first, then the metrics."""
        params_tags = [("params", p) for p in _pairs(params)] + [("tags", t) for t in _pairs(tags)]
        points = [{"key": k, "value": _number(float(v)), "timestamp": timestamp, "step": int(s)}
                  for k, v, s in metrics]
        while params_tags or points:
            body: dict[str, list] = {"params": [], "tags": [], "metrics": []}
            while params_tags and len(body["params"]) + len(body["tags"]) < PARAMS_TAGS_PER_REQUEST:
                kind, item = params_tags.pop(0)
                body[kind].append(item)
            room = METRICS_PER_REQUEST - len(body["params"]) - len(body["tags"])
            body["metrics"], points = points[:room], points[room:]
            self.post("log_batch", "runs/log-batch", {"run_id": run_id, **{k: v for k, v in body.items() if v}})

    def update_run(self, run_id: str, status: RunStatus, end_time: int | None = None) -> None:
        body = {"run_id": run_id, "status": str(status)}
        if status != RunStatus.RUNNING:  # as MlflowClient.set_terminated: the end defaults to now
            body["end_time"] = end_time or int(time.time() * 1000)
        self.post("update_run" if status == RunStatus.RUNNING else "set_terminated", "runs/update", body)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.post("delete_tag", "runs/delete-tag", {"run_id": run_id, "key": key})

    # ---------------------------------------------------------------------------- transport
    def post(self, name: str, endpoint: str, body: dict) -> dict:
        """One request, retried as MLflow retries it; its answer, or MLflow's exception. Counted
        as ``name``, the name of the ``MlflowClient`` method that makes it."""
        from mlflow.exceptions import MlflowException

        self._count(name)
        data = json.dumps(body, allow_nan=False).encode()
        for attempt in range(self.retries + 1):
            wait = 0.0 if attempt == 0 else self.backoff * 2 ** (attempt - 1)
            if self._aborted.is_set():
                raise MlflowException(f"API request to {endpoint} given up: the tracking store "
                                      "stopped answering")
            try:
                status, answer, retry_after = self._send(endpoint, data)
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if attempt == self.retries:
                    raise MlflowException(f"API request to {endpoint} failed: {exc}") from exc
            else:
                if status == 200:
                    return json.loads(answer or b"{}")
                if status not in TRANSIENT or attempt == self.retries:
                    raise _refusal(endpoint, status, answer)
                wait = max(wait, retry_after)
            self._aborted.wait(min(wait, 120.0))
        raise AssertionError("unreachable")

    def _send(self, endpoint: str, data: bytes) -> tuple[int, bytes, float]:
        connection = self._connection()
        connection.request("POST", self._base + endpoint, body=data, headers=self._headers)
        response = connection.getresponse()
        answer = response.read()
        if response.will_close:
            self._drop()
        try:
            retry_after = float(response.getheader("Retry-After") or 0)
        except ValueError:
            retry_after = 0.0
        return response.status, answer, retry_after

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        # A server that closed an idle keep-alive connection left it readable with nothing to read.
        if connection is not None and connection.sock is not None and select.select([connection.sock], [], [], 0)[0]:
            self._drop()
            connection = None
        if connection is None:
            host, port = self._address
            if self._https:
                connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None


class ClientRuns:
    """The same operations through ``MlflowClient`` (every store MLflow can track to)."""

    def __init__(self, client) -> None:
        self.client = client

    def create_run(self, experiment_id: str, start_time: int | None, run_name: str | None,
                   tags: dict[str, str]) -> str:
        return self.client.create_run(experiment_id, start_time=start_time or None, run_name=run_name,
                                      tags=tags).info.run_id

    def log_batch(self, run_id: str, params: dict[str, str], metrics: list[tuple[str, float, int]],
                  tags: dict[str, str], timestamp: int) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                              metrics=[Metric(k, float(v), timestamp, int(s)) for k, v, s in metrics],
                              tags=[RunTag(k, v) for k, v in tags.items()])  # MLflow splits it

    def update_run(self, run_id: str, status: RunStatus, end_time: int | None = None) -> None:
        if status == RunStatus.RUNNING:
            self.client.update_run(run_id, status=str(status))
        else:
            self.client.set_terminated(run_id, str(status), end_time=end_time or None)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.client.delete_tag(run_id, key)
