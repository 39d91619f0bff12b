"""Tracking backends behind one protocol (``Tracker``, in ``base``), found by module name.

A backend is one module of this package named ``<name>_backend`` with a function
``open_backend(uri, experiment) -> Tracker``: adding one takes that module and its test, and
``tracking.backend: <name>`` in a config chooses it (default ``mlflow``). Backends are found
without importing them, and only the chosen one is imported, when ``open_tracker`` is called.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

# Set before any backend imports MLflow (MLflow starts its telemetry client when imported):
# MLflow prints two "View run" lines per ended run against a server, thousands of lines in the
# driver's terminal (and its CPU) for a grid, where albench prints where the runs are once; and
# MLflow 3 sends usage telemetry by default, where albench sends nothing anywhere a user did not
# name (Ray's usage stats are off for the same reason). Either variable set in the environment wins.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from orchestrator.tracking.base import (
    ERROR_TAG,
    GROUP_TAG,
    KIND_TAG,
    TRIAL_KEY_TAG,
    GridHeldError,
    Tracker,
    TrackingURIError,
    TrialRun,
    best_runs,
    masked,
    trial_params,
)

_SUFFIX = "_backend"


def backend_names() -> list[str]:
    """Every backend this package provides (``<name>_backend`` modules)."""
    return sorted(m.name.removesuffix(_SUFFIX) for m in pkgutil.iter_modules(__path__)
                  if m.name.endswith(_SUFFIX))


def open_tracker(uri: str, experiment: str, backend: str = "mlflow", *, create: bool = True) -> Tracker:
    """The experiment's tracker on ``backend``, created when it does not exist yet; with
    ``create=False`` (read-only commands) a missing store or experiment reads as empty.

    A URI the backend cannot use raises ``TrackingURIError`` (a ValueError naming
    ``tracking.uri`` and the fix) before anything is created.
    """
    if backend not in backend_names():
        raise ValueError(f"unknown tracking backend {backend!r}; valid: {', '.join(backend_names())}")
    module = importlib.import_module(f"{__name__}.{backend}{_SUFFIX}")
    return module.open_backend(uri, experiment, create)


__all__ = [
    "ERROR_TAG",
    "GROUP_TAG",
    "KIND_TAG",
    "TRIAL_KEY_TAG",
    "GridHeldError",
    "Tracker",
    "TrackingURIError",
    "TrialRun",
    "backend_names",
    "best_runs",
    "masked",
    "open_tracker",
    "trial_params",
]
