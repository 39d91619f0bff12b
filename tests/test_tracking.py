"""Tracking backends: registered in ``BACKENDS``, each implementing the whole ``Tracker`` protocol
(what the driver writes, what status and the report read, the lease)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from orchestrator.config import ConfigError, parse_config
from orchestrator.tracking import BACKENDS, open_tracker
from orchestrator.tracking.base import LeaseKeeper, RunReader, RunWriter, Tracker
from tests.conftest import tiny_config

PROTOCOL_METHODS = sorted(name for part in (RunReader, RunWriter, LeaseKeeper, Tracker)
                          for name, member in vars(part).items()
                          if callable(member) and not name.startswith("_"))


def test_the_mlflow_backend_is_found_and_is_the_default():
    assert "mlflow" in BACKENDS.names()
    assert parse_config(tiny_config_for_schema()).tracking.backend == "mlflow"


def test_the_three_parts_are_the_whole_protocol_and_do_not_overlap():
    parts = [{n for n in vars(p) if not n.startswith("_")} for p in (RunReader, RunWriter, LeaseKeeper)]
    assert not (parts[0] & parts[1]) and not (parts[1] & parts[2]) and not (parts[0] & parts[2])
    assert {"apply", "log_stage", "publish_report"} <= parts[1] and {"lease", "lease_holder"} == parts[2]


@pytest.mark.parametrize("backend", BACKENDS.names())
def test_every_backend_implements_the_protocol(backend, tmp_path):
    tracker = open_tracker(f"sqlite:///{tmp_path / 'm.db'}", "protocol-check", backend)
    assert isinstance(tracker.uri, str)
    for name in PROTOCOL_METHODS:
        method = getattr(tracker, name, None)
        assert callable(method), f"{backend}: no {name}()"
        wanted = list(inspect.signature(getattr(Tracker, name)).parameters)[1:]
        assert list(inspect.signature(method).parameters)[: len(wanted)] == wanted, name
    assert tracker.trial_runs() == {} and tracker.all_trial_runs() == []
    assert tracker.curves([], ["accuracy"]) == {}
    assert tracker.exists and tracker.ui_link("http://ui") is not None


def test_an_unknown_backend_is_a_config_error_naming_the_field():
    config = tiny_config_for_schema()
    config["tracking"]["backend"] = "wandb"
    with pytest.raises(ConfigError, match=r"tracking\.backend: .*unknown tracking backend 'wandb'; valid: mlflow"):
        parse_config(config)
    with pytest.raises(ValueError, match="unknown tracking backend 'wandb'"):
        open_tracker("sqlite:///unused.db", "x", "wandb")


def tiny_config_for_schema() -> dict:
    from pathlib import Path

    return tiny_config(Path("train.parquet"), Path("work"))



def _probe(code: str, **env: str) -> str:
    import subprocess
    import sys

    ci = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "BUILDKITE", "TF_BUILD")
    environment = {k: v for k, v in os.environ.items()  # MLflow itself stays quiet under pytest and CI
                   if not k.startswith("MLFLOW_") and k not in (*ci, "DO_NOT_TRACK")}
    done = subprocess.run([sys.executable, "-c", code], env={**environment, **env}, capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return done.stdout.split()[-1]


def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on():
    """MLflow 3 starts a telemetry client when imported; through albench it is not started, and a
    user's own ``MLFLOW_DISABLE_TELEMETRY`` wins (not imported here: it would reach out)."""
    assert _probe("import orchestrator.tracking.mlflow_backend, mlflow.telemetry.client as c;"
                  "print(c._MLFLOW_TELEMETRY_CLIENT is None and c.is_telemetry_disabled())") == "True"
    assert _probe("import os, orchestrator.tracking; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])",
                  MLFLOW_DISABLE_TELEMETRY="false") == "false"
