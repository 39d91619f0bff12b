"""MLflow tracking. The driver is the only writer (batched), so SQLite never sees two writers.

Layout: one experiment per config; one parent run per (dataset, embedder) so every strategy of
that cell is compared in one chart; one child run per trial, tagged with its ``trial_key``.
Metrics are logged per cycle with ``step`` = number of labelled rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from workers.specs import TrialSpec

TRIAL_KEY_TAG = "albench.trial_key"
GROUP_TAG = "albench.group"
ERROR_TAG = "albench.error"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
_BATCH = 1000


@dataclass(frozen=True)
class TrialRun:
    """What MLflow knows about one trial key."""

    run_id: str
    status: str
    trial_key: str
    tags: dict
    metrics: dict
    start_time: int = 0
    end_time: int = 0

    def rank(self) -> tuple:
        """Order of preference among runs of one key: FINISHED first, then the latest started."""
        return (self.status == "FINISHED", self.start_time or 0, self.end_time or 0, self.run_id)


def trial_params(trial: TrialSpec) -> dict[str, str]:
    """Flat params of a trial (dataset, embedder, pool, strategy, seed, protocol, learner)."""
    params = {
        "dataset": trial.dataset,
        "embedder": trial.embedder,
        "initial_pool": trial.initial_pool.label,
        "strategy": trial.strategy.label,
        "seed": trial.seed,
        "n_classes": trial.n_classes,
        "dataset_fingerprint": trial.dataset_fingerprint[:16],
        "embedding_key": trial.embedding_key[:16],
    }
    params.update({f"protocol.{k}": v for k, v in trial.protocol.model_dump().items()})
    params.update({f"learner.{k}": v for k, v in trial.learner.model_dump().items()})
    params.update({f"strategy.{k}": v for k, v in trial.strategy.params.items()})
    params.update({f"initial_pool.{k}": v for k, v in trial.initial_pool.params.items()})
    return {k: str(v) for k, v in params.items()}


class _LockRetryingClient:
    """An MlflowClient whose calls are retried when SQLite says "database is locked".

    The driver is the only writer, but readers (``albench status``, the MLflow UI, a script)
    can hold the file long enough for a write to give up. Each MLflow write is one SQL
    transaction, rolled back on that error, so trying it again cannot log anything twice.
    """

    DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            for delay in (*self.DELAYS, None):
                try:
                    return attribute(*args, **kwargs)
                except Exception as exc:
                    if delay is None or "database is locked" not in str(exc):
                        raise
                    time.sleep(delay)

        return call


class Tracker:
    """Writes and reads the runs of one MLflow experiment."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.client = _LockRetryingClient(MlflowClient(tracking_uri=uri))
        self.uri = uri
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self._parents: dict[str, str] = {}

    # ------------------------------------------------------------------------------ reading
    def trial_runs(self) -> dict[str, TrialRun]:
        """One run per trial key across the (active runs of the) experiment.

        There is normally exactly one: an unfinished run is reopened on resume, and a forced
        rerun retires the older runs of its key once it finishes. Should there be several
        anyway (a driver killed between those two steps), the FINISHED one wins, then the latest.
        """
        runs: dict[str, TrialRun] = {}
        for found in self._all_trial_runs():
            previous = runs.get(found.trial_key)
            if previous is None or found.rank() > previous.rank():
                runs[found.trial_key] = found
        return runs

    def _all_trial_runs(self, filter_string: str | None = None) -> list[TrialRun]:
        found: list[TrialRun] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=filter_string or f"tags.`{TRIAL_KEY_TAG}` != ''",
                max_results=5000, page_token=token,
            )
            for run in page:
                found.append(TrialRun(run.info.run_id, run.info.status, run.data.tags[TRIAL_KEY_TAG],
                                      run.data.tags, run.data.metrics, run.info.start_time or 0,
                                      run.info.end_time or 0))
            token = page.token
            if not token:
                return found

    def logged_steps(self, run_id: str, metric: str = "accuracy") -> set[int]:
        return {m.step for m in self.client.get_metric_history(run_id, metric)}

    def logged_points(self, run_id: str, metrics) -> dict[str, set[int]]:
        """Steps already in MLflow, per metric (a resumed run logs only the others)."""
        return {name: self.logged_steps(run_id, name) for name in metrics}

    def curve(self, run_id: str, metric: str = "accuracy") -> list[tuple[int, float]]:
        history = self.client.get_metric_history(run_id, metric)
        return sorted((m.step, m.value) for m in history)

    # ------------------------------------------------------------------------------ writing
    def parent_run(self, dataset: str, embedder: str) -> str:
        """The run grouping every trial of one (dataset, embedder) cell."""
        group = f"{dataset} / {embedder}"
        if group in self._parents:
            return self._parents[group]
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{GROUP_TAG}` = '{group}'", max_results=1
        )
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != "FINISHED":  # a driver died between the two calls below
                self.client.set_terminated(run_id, "FINISHED")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=group,
                tags={GROUP_TAG: group, "dataset": dataset, "embedder": embedder},
            )
            run_id = run.info.run_id
            self.client.set_terminated(run_id, "FINISHED")
        self._parents[group] = run_id
        return run_id

    def start_trial(self, trial: TrialSpec) -> str:
        """A new RUNNING child run with the trial's params and key."""
        parent = self.parent_run(trial.dataset, trial.embedder)
        name = f"{trial.strategy.label} | {trial.initial_pool.label} | seed {trial.seed}"
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={
                TRIAL_KEY_TAG: trial.trial_key,
                PARENT_TAG: parent,
                "dataset": trial.dataset,
                "embedder": trial.embedder,
                "strategy": trial.strategy.label,
                "initial_pool": trial.initial_pool.label,
            },
        )
        params = [Param(k, v) for k, v in trial_params(trial).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start : start + 100])
        return run.info.run_id

    def reopen(self, run_id: str, trial: TrialSpec | None = None) -> None:
        """Mark an interrupted or failed run RUNNING again before it resumes.

        Its params are logged again (same values: a no-op, unless a driver died between
        creating the run and logging them) and a previous error tag is cleared.
        """
        self.client.update_run(run_id, status="RUNNING")
        if trial is not None:
            params = [Param(k, v) for k, v in trial_params(trial).items()]
            for start in range(0, len(params), 100):
                self.client.log_batch(run_id, params=params[start : start + 100])
        if ERROR_TAG in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, ERROR_TAG)

    def log_metrics(self, run_id: str, rows: list[tuple[str, float, int]], timestamp: int) -> None:
        """Log (name, value, step) rows in batches of at most 1000."""
        metrics = [Metric(k, float(v), timestamp, int(s)) for k, v, s in rows]
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + _BATCH])

    def finish(self, run_id: str, summary: dict[str, float], timestamp: int) -> None:
        """Log the summary metrics (those not logged yet: a resumed finish) and end the run."""
        present = self.client.get_run(run_id).data.metrics
        rows = [(k, v, 0) for k, v in summary.items() if k not in present]
        if rows:
            self.log_metrics(run_id, rows, timestamp)
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def retire_others(self, trial_key: str, keep: str) -> list[str]:
        """Delete (MLflow's soft delete, restorable) every other run of ``trial_key``."""
        retired = []
        for run in self._all_trial_runs(f"tags.`{TRIAL_KEY_TAG}` = '{trial_key}'"):
            if run.run_id != keep:
                self.client.delete_run(run.run_id)
                retired.append(run.run_id)
        return retired

    def fail(self, run_id: str, error: str, traceback_text: str, status: str = "FAILED") -> None:
        self.client.log_batch(run_id, tags=[RunTag(ERROR_TAG, error[:4000])])
        self.client.log_text(run_id, traceback_text, "error.txt")
        self.client.set_terminated(run_id, status)
