"""What can be checked before any work starts, beyond the config's schema.

``problems`` are refusals (``albench validate`` lists them all at once, ``albench run`` refuses
to start); ``warnings`` are printed and recorded, and the run goes on.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from orchestrator import cluster
from orchestrator.config import ExperimentConfig
from workers.datasets import TextDataset
from workers.fs import ObjectPath, is_remote


def folder_problem(field: str, path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a writable folder, or None."""
    where = Path(path).absolute()
    if (problem := _link_problem(field, where)) is not None:
        return problem
    if where.exists() and not where.is_dir():
        return f"{field}: {where} is a file, not a folder; fix: give a folder path (or move the file)"
    existing = next(p for p in (where, *where.parents) if p.exists())
    if not existing.is_dir():
        return f"{field}: {where} would be under {existing}, which is a file; fix: choose another folder"
    try:  # root passes every permission check: only a real write tells
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"{field}: {existing} is not writable ({exc.strerror}); fix: choose a writable folder"
    return None


def _link_problem(field: str, where: Path) -> str | None:
    """A symbolic link on the way to ``where`` that loops or points nowhere (``exists()`` says
    False for both, and creating the folder then fails), or None."""
    for step in (where, *where.parents):
        try:
            os.stat(step)
            return None
        except FileNotFoundError:
            if os.path.islink(step):
                return (f"{field}: {where} goes through {step}, a symbolic link to {os.readlink(step)}, "
                        "which does not exist; fix: correct or remove the link, or choose another folder")
        except OSError as exc:
            return (f"{field}: {where} cannot be reached ({step}: {exc.strerror}: a symbolic link "
                    "loop?); fix: correct or remove the symbolic links, or choose another folder")
    return None


_UNREACHABLE = ("NETWORK_CONNECTION", "curlCode", "Could not resolve", "Could not connect",
                "Connection refused", "timed out", "Timeout")
_REFUSED = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "EXPIRED_TOKEN",
            "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
            "Forbidden", "403", "credentials", "Unauthorized", "401")


def _endpoint_variable() -> str | None:
    """The variable naming the S3 endpoint (the service's own first, as AWS's SDKs read them)."""
    return next((n for n in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if os.environ.get(n)), None)


def _endpoint() -> str:
    if (name := _endpoint_variable()) is not None:
        return f"{os.environ[name]} (from {name})"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return f"AWS's own endpoint{f' for {region}' if region else ''} (AWS_ENDPOINT_URL is not set)"


def _object_store_problem(field: str, uri: str, exc: BaseException, bucket: str) -> str:
    """Why an object store refused, in words, with the environment variables that fix it."""
    text = str(exc)
    s3 = uri.lower().startswith("s3://")
    if any(marker in text for marker in _UNREACHABLE):
        where = _endpoint() if s3 else "its endpoint"
        fix = ("set AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) to the server's URL, e.g. "
               "http://127.0.0.1:9000 (unset for AWS itself), and check that the server is up"
               if s3 else "check the endpoint in the environment and that the server is up")
        return f"{field}: cannot reach the object store of {uri} at {where}: {text}; fix: {fix}"
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return _missing_bucket(field, uri, bucket)
    if any(marker in text for marker in _REFUSED):
        fix = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
               f"temporary keys) to a key that may read and write bucket {bucket!r}" if s3 else
               "set the credentials your object store reads from the environment (for gs://: "
               "GOOGLE_APPLICATION_CREDENTIALS) to ones that may read and write it")
        return f"{field}: the object store refused the credentials for {uri}: {text}; fix: {fix}"
    return (f"{field}: cannot use {uri}: {text}; fix: check the URI, the endpoint "
            "(AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")


def _missing_bucket(field: str, uri: str, bucket: str) -> str:
    where = f" at {_endpoint()}" if uri.lower().startswith("s3://") else ""
    return (f"{field}: bucket {bucket!r} of {uri} does not exist{where}; fix: create it (e.g. "
            f"`aws s3 mb s3://{bucket}`) or name an existing bucket in {field}")


def object_store_problem(field: str, uri: str, writing: bool = True) -> str | None:
    """Why ``uri`` cannot hold the store (unknown scheme, endpoint unreachable, credentials
    refused, no such bucket, not writable), or None. A real write tells: a probe object is
    written and deleted (nothing else is created). ``writing=False`` (read-only commands) lists
    the location instead of writing to it."""
    try:
        root = ObjectPath(uri)
    except (ValueError, OSError) as exc:
        return (f"{field}: cannot open {uri} ({exc}); fix: give a local folder or an object-store "
                "URI pyarrow knows (s3://bucket/prefix, gs://bucket/prefix)")
    bucket = root.path.lstrip("/").split("/")[0]
    native = uri.lower().startswith(("s3://", "gs://", "gcs://"))
    if uri.lower().startswith("s3://") and (name := _endpoint_variable()) is not None:
        # a quick connect first: the S3 client retries a refused connection for seconds
        endpoint = urlsplit(os.environ[name])
        port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
        try:
            socket.create_connection((endpoint.hostname or "", port), timeout=10).close()
        except OSError as exc:
            return _object_store_problem(field, uri, ConnectionError(f"Could not connect: {exc}"), bucket)
    try:
        if native and bucket:
            from pyarrow.fs import FileType

            if root.filesystem.get_file_info(bucket).type == FileType.NotFound:
                return _missing_bucket(field, uri, bucket)
        if writing:
            probe = root / f".albench-probe-{uuid.uuid4().hex}"
            probe.write_whole(b"albench preflight: may this store be written?")
            probe.unlink(missing_ok=True)
        else:
            root.filesystem.get_file_info(root.path)
    except OSError as exc:
        return _object_store_problem(field, uri, exc, bucket)
    return None


def location_problem(field: str, where: Path | str, writing: bool = True) -> str | None:
    """Why a ``store`` location (a local folder or an object-store URI) cannot be written (or,
    with ``writing=False``, read: a local folder that does not exist yet reads as empty)."""
    if is_remote(where):
        return object_store_problem(field, str(where), writing)
    return folder_problem(field, Path(where)) if writing else None


def tracking_problem(config: ExperimentConfig) -> str | None:
    """Why the tracking URI cannot work (the backend's own quick check), or None."""
    from orchestrator.tracking import BACKENDS

    try:
        BACKENDS.get(config.tracking.backend).check(config.tracking.uri)
    except ValueError as exc:
        return str(exc)
    return None


def problems(config: ExperimentConfig) -> list[str]:
    """Refusals about where results go (the tracking store, the store locations: folders or
    object stores; one unreachable endpoint is probed once, not once per field) and about the
    cluster (a Ray Client address; results inside a Ray job's temporary working directory)."""
    found = [*cluster.problems(config), tracking_problem(config), *store_problems(config)]
    return [p for p in found if p is not None]


def store_problems(config: ExperimentConfig, writing: bool = True) -> list[str]:
    """Why ``store.path`` or ``store.checkpoints`` cannot be written (or read, for read-only
    commands); an object store that cannot be reached for the first is not probed again."""
    first = location_problem("store.path", config.store.path, writing)
    path, checkpoints = str(config.store.path), str(config.store.checkpoints)
    if (first is not None and is_remote(path) and is_remote(checkpoints)
            and path.split("://")[0] == checkpoints.split("://")[0]
            and "cannot reach the object store" in first):
        second = first.replace("store.path", "store.checkpoints", 1).replace(path, checkpoints)
    else:
        second = location_problem("store.checkpoints", config.store.checkpoints, writing)
    return [p for p in (first, second) if p is not None]


def duplicate_problems(config: ExperimentConfig, datasets: dict[str, TextDataset],
                       identities: dict[str, str]) -> list[str]:
    """Two entries that are one thing under two names would give one trial key two names
    (two FINISHED runs per key, one cell's numbers under the other's name): refused."""
    found = []
    for field, entries, what, same in (
        ("datasets", config.datasets, "the same rows, split and labels", datasets),
        ("embedders", config.embedders, "the same model and settings", identities),
    ):
        first: dict[str, tuple[int, str]] = {}
        for index, entry in enumerate(entries):
            if entry.name not in same:
                continue
            key = same[entry.name].fingerprint if field == "datasets" else same[entry.name]
            if key in first:
                other, name = first[key]
                found.append(f"{field}[{index}] ({entry.name}): {what} as {field}[{other}] ({name}); "
                             "fix: remove one of the two entries")
            else:
                first[key] = (index, entry.name)
    return found


def warnings(config: ExperimentConfig, datasets: dict[str, TextDataset]) -> list[str]:
    """Things albench works around, said out loud: rows dropped, a GPU asked for but absent."""
    found = [note for data in datasets.values() for note in data.drop_notes()]
    if config.resources.strategy_device == "cuda" and not _cuda_here():
        found.append("resources.strategy_device: cuda, but this machine sees no CUDA GPU; the "
                     "strategy kernels run on the CPU unless the trajectory workers have one")
    return found


def protocol_warnings(config: ExperimentConfig, datasets: dict[str, TextDataset]) -> dict[str, list[str]]:
    """Per dataset: what makes its grid misleading, with the numbers. Classes that exist only in
    the test split (no trial can label them: they cap accuracy and macro-F1 for every strategy
    alike), and an initial pool smaller than the number of classes (the first learner cannot
    have seen every class)."""
    found: dict[str, list[str]] = {}
    for name, data in datasets.items():
        notes = []
        only_test = np.setdiff1d(np.unique(data.test_labels), np.unique(data.train_labels))
        if only_test.size:
            rows = int(np.isin(data.test_labels, only_test).sum())
            names = ", ".join(repr(data.label_names[c]) for c in only_test[:5])
            notes.append(f"datasets[{name}]: {only_test.size} classes ({names}) appear only in the test "
                         f"split ({rows} of {data.test_labels.size} test rows): no trial can label them")
        size = config.protocol.initial_pool_size
        if size < data.n_classes:
            notes.append(f"datasets[{name}]: protocol.initial_pool_size {size} is smaller than its "
                         f"{data.n_classes} classes: the first learner cannot have seen every class")
        if notes:
            found[name] = notes
    return found


def _cuda_here() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def offline_problems(config: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(problems, warnings) of ``albench validate --offline``: every embedder resolved (names,
    hub ids, local folders; no model loaded), every dataset source's own offline check (a
    Hugging Face dataset id well formed)."""
    from workers.embedders import EmbedderError, resolve_model

    problems, notes = [], []
    for index, spec in enumerate(config.embedders):
        try:
            resolve_model(spec)
        except EmbedderError as exc:
            problems.append(f"embedders[{index}] {exc}")
        if spec.trust_remote_code:
            notes.append(f"embedders[{spec.name}].trust_remote_code is on: loading {spec.model!r} "
                         "runs Python code from its repository")
    for index, dataset in enumerate(config.datasets):
        problems.extend(dataset.source.offline_problems(f"datasets[{index}].source"))
    return problems, notes
