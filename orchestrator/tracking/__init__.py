"""Tracking backends behind one protocol (``Tracker``, in ``base``), registered in ``BACKENDS``.

A backend is a class built as ``cls(uri, experiment, create)`` (see ``base.Tracker``): albench's
own are modules ``<name>_backend`` of this package naming theirs ``BACKEND`` (``mlflow``);
another package adds one through the entry-point group ``albench.tracking``,
and ``tracking.backend: <name>`` in a config chooses it (default ``mlflow``). Only the chosen
one is imported, when ``open_tracker`` is called.
"""

from __future__ import annotations

import os
import pkgutil

from strategies.registry import Registry

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
    RunStatus,
    Tracker,
    TrackingURIError,
    TrialRun,
    best_runs,
    masked,
    trial_params,
)

BACKENDS: Registry[type[Tracker]] = Registry("tracking backend", "albench.tracking")
for _module in pkgutil.iter_modules(__path__):  # albench's own: <name>_backend modules, imported when chosen
    if _module.name.endswith("_backend"):
        BACKENDS.lazy(_module.name.removesuffix("_backend"), f"{__name__}.{_module.name}:BACKEND")


def open_tracker(uri: str, experiment: str, backend: str = "mlflow", *, create: bool = True) -> Tracker:
    """The experiment's tracker on ``backend``, created when it does not exist yet; with
    ``create=False`` (read-only commands) a missing store or experiment reads as empty.

    A URI the backend cannot use raises ``TrackingURIError`` (a ValueError naming
    ``tracking.uri`` and the fix) before anything is created.
    """
    return BACKENDS.get(backend)(uri, experiment, create)


__all__ = [
    "BACKENDS",
    "ERROR_TAG",
    "GROUP_TAG",
    "KIND_TAG",
    "TRIAL_KEY_TAG",
    "GridHeldError",
    "RunStatus",
    "Tracker",
    "TrackingURIError",
    "TrialRun",
    "best_runs",
    "masked",
    "open_tracker",
    "trial_params",
]
