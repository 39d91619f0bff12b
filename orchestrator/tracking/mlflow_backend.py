"""The MLflow backend. The driver is the only writer (batched), so SQLite never sees two writers.

Layout: one experiment per config; one parent run per (dataset, embedder) so every strategy of
that cell is compared in one chart; one child run per trial, tagged with its ``trial_key``.
Metrics are logged per cycle with ``step`` = number of labelled rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.tracking.base import (
    ERROR_TAG,
    GROUP_TAG,
    TRIAL_KEY_TAG,
    Curve,
    TrackingURIError,
    TrialRun,
    best_runs,
    trial_params,
)
from orchestrator.tracking.mlflow_lease import MlflowLease, live_holder
from orchestrator.tracking.mlflow_uri import check_uri, creation_lock, store_exists
from workers.specs import TrialSpec

PARENT_TAG = "mlflow.parentRunId"
METRICS_PER_BATCH = 1000
"""MLflow's limits per ``log_batch`` call: 1000 metrics, 100 params."""
PARAMS_PER_BATCH = 100
SEARCH_PAGE = 5000
CURVE_RUNS_PER_QUERY = 500
"""Runs per bulk metric-history query (SQL stores): well inside SQLite's variable limit."""


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
        return self.retrying(attribute)

    def retrying(self, function):
        def call(*args, **kwargs):
            for delay in (*self.DELAYS, None):
                try:
                    return function(*args, **kwargs)
                except Exception as exc:
                    if delay is None or "database is locked" not in str(exc):
                        raise
                    time.sleep(delay)

        return call


class MlflowTracker:
    """Writes and reads the runs of one MLflow experiment (implements ``Tracker``)."""

    def __init__(self, uri: str, experiment: str, create: bool = True) -> None:
        """``create=False`` (read-only commands): a missing store or experiment is read as empty
        and is not created."""
        check_uri(uri)
        self.uri = uri
        self.experiment = experiment
        self.experiment_id: str | None = None
        self._parents: dict[str, str] = {}
        self._mlflow: MlflowClient | None = None
        self.client = _LockRetryingClient(None)
        if not create and not store_exists(uri):
            return  # read as empty; an MlflowClient would create the file
        try:
            with creation_lock(uri):  # MLflow creates and migrates the schema on first use
                self._mlflow = self.client._client = MlflowClient(tracking_uri=uri)
                found = self.client.get_experiment_by_name(experiment)
                if found is not None:
                    self.experiment_id = found.experiment_id
                elif create:
                    self.experiment_id = self._create_experiment(experiment)
        except (MlflowException, SQLAlchemyError) as exc:
            reason = " ".join(str(exc).split())[:400]
            raise TrackingURIError(
                f"tracking.uri: {uri!r} cannot be opened as an MLflow tracking store ({reason}); fix: "
                "point tracking.uri at an MLflow database or server (move a damaged file away: a new "
                "one is created)") from None

    def _create_experiment(self, name: str) -> str:
        try:
            return self.client.create_experiment(name)
        except MlflowException as exc:  # another driver created it a moment ago (a server)
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise exc from None
            return found.experiment_id

    @property
    def store(self):
        """MLflow's tracking store behind the client (SQL stores answer bulk queries)."""
        return self._mlflow._tracking_client.store

    # ------------------------------------------------------------------------------ reading
    def trial_runs(self) -> dict[str, TrialRun]:
        """One run per trial key across the (active runs of the) experiment.

        There is normally exactly one: an unfinished run is reopened on resume, and a forced
        rerun retires the older runs of its key once it finishes. Should there be several
        anyway (a driver killed between those two steps), the FINISHED one wins, then the latest.
        """
        return best_runs(self.all_trial_runs())

    def all_trial_runs(self, trial_key: str | None = None) -> list[TrialRun]:
        """Every live trial run (of one key, when given), read in pages of 5000."""
        if self.experiment_id is None:
            return []
        filter_string = (f"tags.`{TRIAL_KEY_TAG}` = '{trial_key}'" if trial_key is not None
                         else f"tags.`{TRIAL_KEY_TAG}` != ''")
        found: list[TrialRun] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=filter_string,
                                           max_results=SEARCH_PAGE, page_token=token)
            for run in page:
                found.append(TrialRun(run.info.run_id, run.info.status, run.data.tags[TRIAL_KEY_TAG],
                                      run.data.tags, run.data.metrics, run.info.start_time or 0,
                                      run.info.end_time or 0, run.data.params))
            token = page.token
            if not token:
                return found

    def lease_holder(self) -> str | None:
        if self.experiment_id is None:
            return None
        return live_holder(self.client, self.experiment)

    def logged_points(self, run_id: str, metrics: Iterable[str]) -> dict[str, set[int]]:
        """Steps already in MLflow, per metric (a resumed run logs only the others)."""
        return {name: {m.step for m in self.client.get_metric_history(run_id, name)} for name in metrics}

    def curve(self, run_id: str, metric: str = "accuracy") -> Curve:
        history = self.client.get_metric_history(run_id, metric)
        return sorted((m.step, m.value) for m in history)

    def curves(self, run_ids: list[str], metrics: Iterable[str]) -> dict[str, dict[str, Curve]]:
        """run id -> metric -> points. SQL stores answer one query per metric and 500 runs;
        other stores (a server) one history call per run and metric."""
        metrics = list(metrics)
        result: dict[str, dict[str, Curve]] = {run_id: {m: [] for m in metrics} for run_id in run_ids}
        if not run_ids:
            return result
        bulk = getattr(self.store, "get_metric_history_bulk", None)
        if bulk is None:
            for run_id in run_ids:
                for metric in metrics:
                    result[run_id][metric] = self.curve(run_id, metric)
            return result
        bulk = self.client.retrying(bulk)
        for start in range(0, len(run_ids), CURVE_RUNS_PER_QUERY):
            chunk = run_ids[start : start + CURVE_RUNS_PER_QUERY]
            for metric in metrics:
                for row in bulk(chunk, metric, max_results=2**62):
                    result[row.run_id][metric].append((row.step, row.value))
        for per_metric in result.values():
            for points in per_metric.values():
                points.sort()
        return result

    # ------------------------------------------------------------------------------ writing
    def lease(self) -> MlflowLease:
        return MlflowLease(self.client, self.experiment)

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

    def start_trial(self, trial: TrialSpec, tags: dict[str, str] | None = None) -> str:
        """A new RUNNING child run with the trial's params, key and ``tags``."""
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
                **(tags or {}),
            },
        )
        self._log_params(run.info.run_id, trial)
        return run.info.run_id

    def _log_params(self, run_id: str, trial: TrialSpec) -> None:
        params = [Param(k, v) for k, v in trial_params(trial).items()]
        for start in range(0, len(params), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=params[start : start + PARAMS_PER_BATCH])

    def reopen(self, run_id: str, trial: TrialSpec | None = None) -> None:
        """Mark an interrupted or failed run RUNNING again before it resumes.

        Its params are logged again (same values: a no-op, unless a driver died between
        creating the run and logging them) and a previous error tag is cleared.
        """
        self.client.update_run(run_id, status="RUNNING")
        if trial is not None:
            self._log_params(run_id, trial)
        if ERROR_TAG in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, ERROR_TAG)

    def log_metrics(self, run_id: str, rows: list[tuple[str, float, int]], timestamp: int) -> None:
        """Log (name, value, step) rows in batches of at most 1000."""
        metrics = [Metric(k, float(v), timestamp, int(s)) for k, v, s in rows]
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_BATCH])

    def finish(self, run_id: str, summary: dict[str, float], timestamp: int,
               tags: dict[str, str] | None = None) -> None:
        """Log the summary metrics (those not logged yet: a resumed finish), ``tags``, end the run."""
        present = self.client.get_run(run_id).data.metrics
        rows = [(k, v, 0) for k, v in summary.items() if k not in present]
        if rows:
            self.log_metrics(run_id, rows, timestamp)
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v[:4000]) for k, v in tags.items()])
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def retire_others(self, trial_key: str, keep: str) -> list[str]:
        """Delete (MLflow's soft delete, restorable) every other run of ``trial_key``."""
        retired = []
        for run in self.all_trial_runs(trial_key):
            if run.run_id != keep:
                self.client.delete_run(run.run_id)
                retired.append(run.run_id)
        return retired

    def fail(self, run_id: str, error: str, traceback_text: str, status: str = "FAILED") -> None:
        self.client.log_batch(run_id, tags=[RunTag(ERROR_TAG, error[:4000])])
        self.client.log_text(run_id, traceback_text, "error.txt")
        self.client.set_terminated(run_id, status)


def open_backend(uri: str, experiment: str, create: bool = True) -> MlflowTracker:
    return MlflowTracker(uri, experiment, create)
