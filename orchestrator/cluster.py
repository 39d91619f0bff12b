"""The driver on a Ray cluster: what it refuses before any work, and what it may ask of the nodes.

- **Ray Client** (``RAY_ADDRESS=ray://...``) is refused before anything is written: trajectories
  stream from a generator actor method, which Ray Client does not support. The driver runs on
  the head node (``RAY_ADDRESS=host:port``) or as a job (``ray job submit``).
- **Under ``ray job submit``** the driver runs inside a temporary copy of the job's working
  directory on the head node; a store, checkpoints (and the grid lock beside them) or an SQLite
  tracking file resolved into that copy would be lost with it, and a second driver elsewhere
  would not see the lock: refused, naming each field.
- **Resources** are checked against the largest live node, not the cluster's total: an actor
  asks for its CPUs and GPUs on one node. ``cpus_per_embedding`` is capped at the largest node's
  CPUs (it is a thread count, as it always was capped); ``gpus_per_embedding`` and
  ``cpus_per_trajectory`` that no node can give are refused. On a cluster (``RAY_ADDRESS``) the
  driver first waits a while for nodes still joining (``ALBENCH_NODE_WAIT_SECONDS``, default 120).
- **Token authentication**: a connection refused for its token gets the fix (``RAY_AUTH_MODE``
  and the token on every node and client) instead of Ray's retries and traceback.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import ConfigError, ExperimentConfig

JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""What Ray's job supervisor sets for a job's driver (its runtime_env and metadata)."""
NODE_WAIT_ENV = "ALBENCH_NODE_WAIT_SECONDS"
NODE_WAIT_SECONDS = 120.0
CLIENT_FIX = ("run the driver on the head node with RAY_ADDRESS=<head>:6379 (the GCS address), or "
              "submit it as a job: ray job submit --address http://<head>:8265 --working-dir . -- "
              "albench run CONFIG")


# ------------------------------------------------------------------------------ Ray Client


def client_problem(environ=os.environ) -> str | None:
    """Why ``RAY_ADDRESS`` cannot work (a Ray Client address), or None."""
    address = environ.get("RAY_ADDRESS", "")
    if not address.startswith("ray://"):
        return None
    return (f"RAY_ADDRESS={address} is a Ray Client address, which albench cannot use: its "
            "trajectories stream from a generator actor method, which Ray Client does not "
            f"support; fix: {CLIENT_FIX}")


# ------------------------------------------------------------------------- ray job submit


def job_config(environ=os.environ) -> dict | None:
    """The job's config (runtime_env, metadata) when this driver runs under ``ray job submit``."""
    raw = environ.get(JOB_CONFIG_ENV)
    if raw is None:
        return None
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def job_working_copy(environ=os.environ) -> Path | None:
    """The temporary copy of the job's working directory this driver runs in (its cwd, when the
    job has a ``working_dir``), or None."""
    job = job_config(environ)
    if job is None or not (job.get("runtime_env") or {}).get("working_dir"):
        return None
    return Path.cwd().resolve()


def _is_uri(value) -> bool:
    """``s3://bucket/x`` and the like (also as a ``Path``, which folds ``//``): not on this disk."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", str(value)) is not None


def _inside_job_copy(path: Path, copy: Path | None) -> bool:
    """``path`` lies in the job's temporary copy (or in any working_dir copy Ray extracted)."""
    if _is_uri(path):
        return False
    path = Path(path).absolute().resolve()
    if copy is not None and (path == copy or copy in path.parents):
        return True
    return any(p.name == "working_dir_files" and p.parent.name == "runtime_resources"
               for p in path.parents)


def _sqlite_file(uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return None
    return Path(uri[len(prefix):])


def job_path_problems(config: ExperimentConfig, environ=os.environ) -> list[str]:
    """Under ``ray job submit``: each result location that would land in the job's temporary
    copy of its working directory (gone with the job, invisible to the submitting machine)."""
    if job_config(environ) is None:
        return []
    copy = job_working_copy(environ)
    where = [("store.path", config.store.path,
              "an absolute path every node and the submitting machine see (a shared mount), or s3://"),
             ("store.checkpoints", config.store.checkpoints,
              "an absolute path on the head node that outlives the job (the grid lock lives there too)")]
    database = _sqlite_file(config.tracking.uri)
    if database is not None:
        where.append(("tracking.uri", database,
                      "an MLflow server (http://...) or an absolute sqlite:////path outside the job's folder"))
    found = []
    for field, path, fix in where:
        if _inside_job_copy(Path(path), copy):
            found.append(f"{field}: {path} is inside the temporary copy of the job's working "
                         "directory (a relative path in the config resolves there under `ray job "
                         f"submit`): it would be lost with the job and the submitting side would "
                         f"see nothing; fix: {fix}")
    return found


def problems(config: ExperimentConfig, environ=os.environ) -> list[str]:
    """What the cluster side refuses before anything is written (lock, tracker, store)."""
    client = client_problem(environ)
    return ([client] if client else []) + job_path_problems(config, environ)


# ------------------------------------------------------------------------------ resources


def live_nodes() -> list[dict[str, float]]:
    """The resources of every live node of the connected cluster."""
    import ray

    return [dict(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")]


def largest(nodes: list[dict[str, float]], resource: str) -> float:
    return max((node.get(resource, 0.0) for node in nodes), default=0.0)


def slots(nodes: list[dict[str, float]], cpus: float) -> int:
    """How many actors of ``cpus`` CPUs the nodes hold at once (each fits on one node)."""
    return sum(int(node.get("CPU", 0.0) // cpus) for node in nodes)


@dataclass(frozen=True)
class Fit:
    """What the nodes can give the config's resource requests."""

    embedding_cpus: float
    """CPUs per embedding actor on CPU: ``cpus_per_embedding``, capped at the largest node."""
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def fit(resources, nodes: list[dict[str, float]]) -> Fit:
    """The config's ``resources`` against these nodes: caps, and refusals naming the field."""
    cpu, gpu = largest(nodes, "CPU"), largest(nodes, "GPU")
    shape = ", ".join(f"{n.get('CPU', 0):g} CPU" + (f" {n['GPU']:g} GPU" if n.get("GPU") else "")
                      for n in nodes) or "none"
    found, notes = [], []
    if cpu <= 0:
        found.append(f"resources: no live node has a CPU for the trajectory actors (nodes: {shape}); "
                     "fix: start worker nodes with CPUs (ray start --address=<head>:6379) before the driver")
    elif resources.cpus_per_trajectory > cpu:
        found.append(f"resources.cpus_per_trajectory: {resources.cpus_per_trajectory:g} CPUs per "
                     f"trajectory actor, but the largest node has {cpu:g} (nodes: {shape}); fix: "
                     f"set it to at most {cpu:g}, or add a node with "
                     f"{resources.cpus_per_trajectory:g} CPUs")
    if gpu > 0 and resources.gpus_per_embedding > gpu:
        found.append(f"resources.gpus_per_embedding: {resources.gpus_per_embedding:g} GPUs per "
                     f"embedding actor, but the largest node has {gpu:g} (nodes: {shape}); fix: "
                     f"set it to at most {gpu:g}")
    embedding_cpus = resources.cpus_per_embedding
    if gpu <= 0 and 0 < cpu < embedding_cpus:
        embedding_cpus = cpu
        notes.append(f"resources.cpus_per_embedding: {resources.cpus_per_embedding:g} capped at "
                     f"{cpu:g}, the most CPUs of one node (nodes: {shape})")
    return Fit(embedding_cpus, tuple(found), tuple(notes))


def fit_on_cluster(resources, say=None) -> Fit:
    """``fit`` on the connected cluster. Connected to one (``RAY_ADDRESS``), nodes may still be
    joining: waits up to ``ALBENCH_NODE_WAIT_SECONDS`` for the requests to fit before refusing."""
    wait = float(os.environ.get(NODE_WAIT_ENV, NODE_WAIT_SECONDS)) if os.environ.get("RAY_ADDRESS") else 0.0
    deadline = time.monotonic() + wait
    result = fit(resources, live_nodes())
    if result.problems and wait > 0 and say is not None:
        say(f"waiting up to {wait:g} s for nodes that fit the resource requests ({NODE_WAIT_ENV})")
    while result.problems and time.monotonic() < deadline:
        time.sleep(1.0)
        result = fit(resources, live_nodes())
    return result


def check_resources(resources, reporter) -> Fit:
    """``fit_on_cluster``, its notes printed; a ``ConfigError`` listing its problems."""
    result = fit_on_cluster(resources, reporter.say)
    if result.problems:
        raise ConfigError(f"{len(result.problems)} problem(s) with the cluster's nodes, found before "
                          "any work started:\n" + "\n".join(f"  {p}" for p in result.problems))
    for note in result.notes:
        reporter.warn(f"note: {note}")
    return result


# ------------------------------------------------------------------------- authentication


def auth_hint(exc: BaseException) -> str | None:
    """The fix when ``exc`` (from connecting) is Ray refusing this client's token, else None."""
    from ray.exceptions import AuthenticationError

    seen, todo = set(), [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, AuthenticationError) or "InvalidAuthToken" in str(error) \
                or "Unauthenticated" in str(error):
            return ("the Ray cluster refused this client's authentication token; fix: set "
                    "RAY_AUTH_MODE=token and the cluster's token on every node and on this client "
                    "(RAY_AUTH_TOKEN, or a file named by RAY_AUTH_TOKEN_PATH, default "
                    "~/.ray/auth_token; `ray get-auth-token` on the head node prints it)")
        todo += [error.__cause__, error.__context__]
    return None
