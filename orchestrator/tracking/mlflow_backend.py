"""The MLflow backend. The driver is the only writer (batched), so SQLite never sees two writers.

Layout: one experiment per config; one parent run per (dataset, embedder) so every strategy of
that cell is compared in one chart; one child run per trial, tagged with its ``trial_key``.
Metrics are logged per cycle with ``step`` = number of labelled rows. Each parent run carries
the figure of its cell (``log_cell_figure``); one more run, tagged ``albench.kind = report``,
holds the grid's report as artifacts (``publish_report``). Artifacts go to the experiment's
artifact store through MLflow's artifact API, never through the run tables.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.tracking import mlflow_sql
from orchestrator.tracking.base import (
    GROUP_TAG,
    KIND_TAG,
    REPORT_KIND,
    TRIAL_KEY_TAG,
    Curve,
    RunStatus,
    RunWrite,
    TrackingURIError,
    TrialRun,
    best_runs,
    masked,
)
from orchestrator.tracking.mlflow_curves import read_curves
from orchestrator.tracking.mlflow_lease import MlflowLease, live_holder
from orchestrator.tracking.mlflow_rest import ClientRuns, RestRuns, for_store
from orchestrator.tracking.mlflow_uri import (
    LockRetryingClient,
    check_uri,
    creation_lock,
    read_only_problem,
    store_exists,
    use_server_credentials,
)
from orchestrator.tracking.spans import later_ends
from workers.specs import TrialSpec

PARENT_TAG = "mlflow.parentRunId"
SEARCH_PAGE = 5000
WRITER_THREADS = 8
"""Concurrent writers against an MLflow server (each a connection; the server orders nothing)."""
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""The experiment's kind as MLflow 3's UI reads it: "Machine learning" (runs, metrics), not
"GenAI apps & agents" (traces). MLflow 3.17's UI picks the view from its workflow switch
(``experiment_url`` sets it); the tag is what earlier MLflow 3 UIs read."""
REPORT_RUN_NAME = "report"
NOTE_TAG = "mlflow.note.content"
"""A run's description in the MLflow UI (markdown)."""


def experiment_url(ui: str, experiment_id: str) -> str:
    """The MLflow UI's page of an experiment's training runs: ``ui`` is its base address
    (http://127.0.0.1:5000); ``workflowType=machine_learning`` is the UI's switch for that view."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


class MlflowTracker:
    """Writes and reads the runs of one MLflow experiment (implements ``Tracker``): the backend
    ``mlflow``."""

    def __init__(self, uri: str, experiment: str, create: bool = True) -> None:
        """``create=False`` (read-only commands): a missing store or experiment is read as empty
        and is not created."""
        check_uri(uri, writing=create)
        uri = use_server_credentials(uri)
        self.shown_uri = masked(uri)
        self.uri = uri
        """The URI MLflow is given (a server's credentials moved to MLflow's variables); the
        password of a database URI is in it: show ``masked(uri)``."""
        self.experiment = experiment
        self.experiment_id: str | None = None
        self._parents: dict[str, str] = {}
        self._parent_ends: dict[str, int] = {}  # parent run id -> its end as recorded (epoch ms)
        self._parent_lock = threading.Lock()
        self._mlflow: MlflowClient | None = None
        self._artifact_location = ""
        self.bulk = False
        """Write and read through ``mlflow_sql`` (SQLite, PostgreSQL), not call by call."""
        self.client = LockRetryingClient(None)
        self.rest: RestRuns | None = None
        """Trial writes as plain REST calls (an MLflow server; ``mlflow_rest``), else the client."""
        if not create and not store_exists(uri):
            return  # read as empty; an MlflowClient would create the file
        try:
            # MLflow creates the schema on first use; a read-only command creates nothing and
            # takes no lock (the schema was checked: a read-only grid can be read)
            with creation_lock(uri) if create else contextlib.nullcontext():
                self._mlflow = self.client._client = MlflowClient(tracking_uri=uri)
                found = self.client.get_experiment_by_name(experiment)
                if found is None and create:
                    self._create_experiment(experiment)
                    found = self.client.get_experiment_by_name(experiment)
                if found is not None:
                    self.experiment_id = found.experiment_id
                    self._artifact_location = found.artifact_location
                    if create and found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                        self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
                self.bulk = mlflow_sql.supports(self.store)
                self.rest = None if self.bulk else for_store(self.store, self._count)
        except (MlflowException, SQLAlchemyError) as exc:
            reason = masked(" ".join(str(exc).split())[:400])
            raise TrackingURIError(
                f"tracking.uri: MLflow cannot open {masked(uri)!r} ({reason}); fix: what MLflow says "
                "above, or name another tracking store") from None

    check = staticmethod(check_uri)

    @property
    def exists(self) -> bool:
        return self.experiment_id is not None

    def ui_link(self, ui: str) -> str | None:
        """The runs view of the experiment, not MLflow 3's GenAI overview."""
        return experiment_url(ui, self.experiment_id) if self.exists else None

    def _create_experiment(self, name: str) -> str:
        try:
            return self.client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException as exc:  # another driver created it a moment ago (a server)
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise exc from None
            return found.experiment_id

    def abort(self) -> None:
        """The writer gave up on the store (gone for longer than its bound): writes in flight
        stop retrying at once."""
        if self.rest is not None:
            self.rest.abort()

    @property
    def store(self):
        """MLflow's tracking store behind the client (SQL stores answer bulk queries)."""
        return self._mlflow._tracking_client.store

    # ------------------------------------------------------------------------------ reading
    def trial_runs(self, *, with_params: bool = True) -> dict[str, TrialRun]:
        """One run per trial key across the (active runs of the) experiment.

        There is normally exactly one: an unfinished run is reopened on resume, and a forced
        rerun retires the older runs of its key once it finishes. Should there be several
        anyway (a driver killed between those two steps), the FINISHED one wins, then the latest.
        """
        return best_runs(self.all_trial_runs(with_params=with_params))

    def all_trial_runs(self, trial_key: str | None = None, *, with_params: bool = True) -> list[TrialRun]:
        """Every live trial run (of one key, when given): four queries on a SQL store, else
        searches in pages of 5000. ``with_params=False``: without params (``status``)."""
        if self.experiment_id is None:
            return []
        if self.bulk:
            rows = self.client.retrying(mlflow_sql.read_runs)(self.store, self.experiment_id, TRIAL_KEY_TAG,
                                                              trial_key, with_params=with_params)
            return [TrialRun(r["run_id"], RunStatus(r["status"]), r["tags"][TRIAL_KEY_TAG], r["tags"], r["metrics"],
                             r["start_time"] or 0, r["end_time"] or 0, r["params"]) for r in rows]
        filter_string = (f"tags.`{TRIAL_KEY_TAG}` = '{trial_key}'" if trial_key is not None
                         else f"tags.`{TRIAL_KEY_TAG}` != ''")
        found: list[TrialRun] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=filter_string,
                                           max_results=SEARCH_PAGE, page_token=token)
            for run in page:
                found.append(TrialRun(run.info.run_id, RunStatus(run.info.status), run.data.tags[TRIAL_KEY_TAG],
                                      run.data.tags, run.data.metrics, run.info.start_time or 0,
                                      run.info.end_time or 0, run.data.params if with_params else None))
            token = page.token
            if not token:
                return found

    def lease_holder(self) -> str | None:
        if self.experiment_id is None:
            return None
        return live_holder(self.client, self.experiment)

    def curve(self, run_id: str, metric: str = "accuracy") -> Curve:
        history = self.client.get_metric_history(run_id, metric)
        return sorted((m.step, m.value) for m in history)

    def curves(self, run_ids: list[str], metrics: Iterable[str]) -> dict[str, dict[str, Curve]]:
        """run id -> metric -> points, read in bulk (``mlflow_curves``)."""
        return read_curves(self, run_ids, list(metrics))

    @contextlib.contextmanager
    def counting_call(self, name: str):
        """Count a call made around the client (``calls`` reports every call to MLflow)."""
        self._count(name)
        yield

    def _count(self, name: str) -> None:
        with self.client._counting:
            self.client.counts[name] += 1

    # ------------------------------------------------------------------------------ writing
    def lease(self) -> MlflowLease:
        return MlflowLease(self.client, self.experiment)

    def parent_run(self, dataset: str, embedder: str, start: int | None = None) -> str:
        """The run grouping every trial of one (dataset, embedder) cell (starting at ``start``)."""
        group = f"{dataset} / {embedder}"
        with self._parent_lock:  # writer threads ask at once
            if group not in self._parents:
                self._parents[group] = self._find_or_create_parent(group, dataset, embedder, start)
            return self._parents[group]

    def _find_or_create_parent(self, group: str, dataset: str, embedder: str, start: int | None = None) -> str:
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{GROUP_TAG}` = '{group}'", max_results=1
        )
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != RunStatus.FINISHED:  # a driver died between the two calls below
                self.client.set_terminated(run_id, RunStatus.FINISHED.value)
            self._parent_ends[run_id] = found[0].info.end_time or 0
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=group, start_time=start or None,
                tags={GROUP_TAG: group, "dataset": dataset, "embedder": embedder},
            )
            run_id = run.info.run_id
            self.client.set_terminated(run_id, RunStatus.FINISHED.value, end_time=start or None)
            self._parent_ends[run_id] = start or 0
        return run_id

    @property
    def calls(self) -> int:
        """MLflow calls this tracker made (a bulk transaction counts one)."""
        return self.client.counts.total()

    @property
    def concurrency(self) -> int:
        """One writer for a database (SQLite allows no other), ``WRITER_THREADS`` for a server."""
        return 1 if self.uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES else WRITER_THREADS

    def apply(self, writes: list[RunWrite]) -> None:
        """Record ``writes``: in one transaction on SQL stores (``mlflow_sql``), else with at most
        three calls per run (create with tags; one batch of params, metrics and tags; the end)."""
        if not writes:
            return
        for write in writes:
            if write.ref.run_id is None and write.create is not None:
                write.create = {**self._trial_tags(write.trial, write.start or write.timestamp), **write.create}
        spans = later_ends(writes, lambda t: self.parent_run(t.dataset, t.embedder), self._parent_ends)
        if self.bulk:  # the parents' ends in the same transaction
            self.client.retrying(mlflow_sql.apply)(self.store, self.experiment_id,
                                                    self._artifact_location, writes, spans)
        else:
            for write in writes:
                self._apply_one(write)
            for parent, end in spans.items():
                self.client.set_terminated(parent, "FINISHED", end_time=end)
        for write in writes:
            if write.error_text is not None:
                self.client.log_text(write.ref.run_id, write.error_text, "error.txt")
            if write.retire_others and write.end == RunStatus.FINISHED:
                self.retire_others(write.trial.trial_key, write.ref.run_id)
            if write.after is not None:
                write.after()

    def log_stage(self, kind: str, name: str, *, params: dict[str, str], metrics: dict[str, float],
                  tags: dict[str, str] | None = None, started: float | None = None) -> str:
        """Three calls: create the run (from ``started``), one batch of params and metrics, the end."""
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     start_time=int(started * 1000) if started else None,
                                     tags={**(tags or {}), KIND_TAG: kind})
        now = int(time.time() * 1000)
        self.client.log_batch(run.info.run_id,
                              metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                              params=[Param(k, masked(str(v))[:6000]) for k, v in params.items()])
        self.client.set_terminated(run.info.run_id, RunStatus.FINISHED.value)
        return run.info.run_id

    def _trial_tags(self, trial: TrialSpec, start: int | None = None) -> dict[str, str]:
        """A trial run's tags: its key, its parent (the dataset x embedder run), its name."""
        return {
            TRIAL_KEY_TAG: trial.trial_key,
            PARENT_TAG: self.parent_run(trial.dataset, trial.embedder, start),
            MLFLOW_RUN_NAME: f"{trial.strategy.label} | {trial.initial_pool.label} | seed {trial.seed}",
            "dataset": trial.dataset,
            "embedder": trial.embedder,
            "strategy": trial.strategy.label,
            "initial_pool": trial.initial_pool.label,
        }

    def _apply_one(self, write: RunWrite) -> None:
        runs = self.rest or ClientRuns(self.client)
        if write.ref.run_id is None:
            tags = dict(write.create or {})
            name = tags.pop(MLFLOW_RUN_NAME, None)
            write.ref.run_id = runs.create_run(self.experiment_id, write.start or write.timestamp, name, tags)
        run_id = write.ref.run_id
        if write.reopen:
            runs.update_run(run_id, RunStatus.RUNNING)
        for key in write.clear_tags:
            runs.delete_tag(run_id, key)
        if write.params or write.metrics or write.tags:
            runs.log_batch(run_id, write.params, write.metrics, write.tags, write.timestamp)
        if write.end is not None:
            runs.update_run(run_id, write.end, write.timestamp)

    def retire_others(self, trial_key: str, keep: str) -> list[str]:
        """Delete (MLflow's soft delete, restorable) every other run of ``trial_key``."""
        retired = []
        for run in self.all_trial_runs(trial_key):
            if run.run_id != keep:
                self.client.delete_run(run.run_id)
                retired.append(run.run_id)
        return retired


    # ---------------------------------------------------------------------------- artifacts
    def _artifacts(self, run_id: str):
        """The artifact repository of one run (MLflow's, as ``MlflowClient`` would use it)."""
        run = self.client.get_run(run_id)
        return get_artifact_repository(run.info.artifact_uri, tracking_uri=self.uri)

    def log_cell_figure(self, dataset: str, embedder: str, image: Path) -> bool:
        """Attach ``image`` to the cell's parent run (the file of that name is replaced). Only
        reads the run tables: a parent the writer has not created yet is left for later (False),
        so a SQLite file still sees one writer."""
        group = f"{dataset} / {embedder}"
        with self._parent_lock:
            run_id = self._parents.get(group)
        if run_id is None:
            found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{GROUP_TAG}` = '{group}'",
                                            max_results=1)
            if not found:
                return False
            run_id = found[0].info.run_id
        self.client.log_artifact(run_id, str(image))
        return True

    def report_run(self) -> str:
        """The experiment's report run, created (FINISHED, without a trial key) on first use."""
        if self.experiment_id is None:
            raise ValueError("the experiment does not exist: nothing to report")
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{REPORT_KIND}'",
                                        order_by=["attributes.start_time ASC"], max_results=1)
        if found:
            return found[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=REPORT_RUN_NAME, tags={
            KIND_TAG: REPORT_KIND,
            NOTE_TAG: (f"The albench report of the grid {self.experiment!r}: open *Artifacts*, then "
                       "`index.html` (the same folder is under `reports/` where the report was built)."),
        })
        self.client.set_terminated(run.info.run_id, RunStatus.FINISHED.value)
        return run.info.run_id

    def publish_report(self, folder: Path) -> str:
        """Log ``folder`` as the report run's artifacts, then remove the files an earlier report
        left that this one lacks; the run's end time says when it was published last."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"no report folder at {folder}")
        if (problem := read_only_problem(self.uri)) is not None:  # a read-only grid: not tried
            raise TrackingURIError(problem)
        run_id = self.report_run()
        repository = self._artifacts(run_id)
        self.client.retrying(repository.log_artifacts)(str(folder))
        fresh = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        for stale in sorted(set(_artifact_files(repository)) - fresh):
            self.client.retrying(repository.delete_artifacts)(stale)
        self.client.set_terminated(run_id, RunStatus.FINISHED.value)
        return run_id


def _artifact_files(repository, path: str | None = None) -> list[str]:
    """Every file under ``path`` of an artifact repository (relative paths)."""
    found = []
    for info in repository.list_artifacts(path):
        found.extend(_artifact_files(repository, info.path) if info.is_dir else [info.path])
    return found


BACKEND = MlflowTracker
"""The backend ``mlflow`` (``orchestrator.tracking.BACKENDS``)."""
