"""MLflow's SQL store written in bulk: many runs' writes in one transaction.

MLflow's store API opens a transaction per call and spends about 35 ORM statements on one
trial (create, one batch, end: ~45 ms of CPU here), which caps a single driver near 20 trials/s
on SQLite. This module writes the same rows into the same tables (MLflow's own table models,
of the pinned ``mlflow`` version) with a few executemany statements per flush, so one commit
covers every run of the flush. What it writes is what the API writes: the run row and its
``mlflow.runName`` tag, params, metrics with MLflow's NaN and infinity encoding, the latest
metrics table, tags, status and end time (``tests/test_tracking_writes.py`` compares both paths
row for row). It validates keys and values with MLflow's validators. Used for SQLite and
PostgreSQL stores; others (and servers) take the API path.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable

from mlflow.entities import LifecycleStage, RunStatus, SourceType
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import _validate_metric, _validate_param, _validate_tag
from sqlalchemy import and_, delete, select, update

from orchestrator.tracking.base import RunWrite

DIALECTS = ("sqlite", "postgresql")
CHUNK = 500
"""Runs per IN (...) list: well inside SQLite's and PostgreSQL's parameter limits."""
_MAX = 1.7976931348623157e308


def supports(store) -> bool:
    """True for the SQL stores this module writes (SQLite, PostgreSQL)."""
    engine = getattr(store, "engine", None)
    return engine is not None and engine.dialect.name in DIALECTS and hasattr(store, "ManagedSessionMaker")


def _insert(dialect: str, table):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _encode(value: float) -> tuple[bool, float]:
    """MLflow's storage of a metric value: (is_nan, value); infinities become +-max float."""
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, _MAX if value > 0 else -_MAX
    return False, value


def apply(store, experiment_id: str, artifact_location: str, writes: Iterable[RunWrite],
          spans: dict[str, int] | None = None) -> None:
    """Apply ``writes`` in one transaction (new runs get their ids here); ``spans``: run id ->
    a new end time (the parent runs', spanning their children)."""
    writes = list(writes)
    dialect = store.engine.dialect.name
    runs, tags, params, metrics, ends, reopened, cleared = [], {}, {}, {}, [], [], []
    fresh: dict[int, str] = {}  # id(ref) -> the id of a run created here (set once committed)
    for write in writes:
        if write.ref.run_id is None and id(write.ref) not in fresh:
            if write.create is None:
                raise ValueError("a write for a run without an id must create it")
            run_id = uuid.uuid4().hex
            name = write.create.get(MLFLOW_RUN_NAME) or run_id
            runs.append({
                "run_uuid": run_id, "name": name, "experiment_id": int(experiment_id),
                "artifact_uri": append_to_uri_path(artifact_location, run_id, "artifacts"),
                "source_type": SourceType.to_string(SourceType.UNKNOWN), "source_name": "",
                "entry_point_name": "", "user_id": "unknown", "status": RunStatus.to_string(RunStatus.RUNNING),
                "start_time": write.start or write.timestamp, "end_time": None, "deleted_time": None,
                "source_version": "", "lifecycle_stage": LifecycleStage.ACTIVE,
            })
            fresh[id(write.ref)] = run_id
            for key, value in {**write.create, MLFLOW_RUN_NAME: name}.items():
                tag = _validate_tag(key, value)
                tags[(tag.key, run_id)] = tag.value
        run_id = write.ref.run_id or fresh[id(write.ref)]
        if write.reopen:
            reopened.append(run_id)
        cleared.extend((key, run_id) for key in write.clear_tags)
        for key, value in write.params.items():
            param = _validate_param(key, value)
            params[(param.key, run_id)] = param.value
        for key, value, step in write.metrics:
            _validate_metric(key, value, write.timestamp, step)
            is_nan, stored = _encode(float(value))
            metrics[(key, write.timestamp, int(step), run_id, stored, is_nan)] = None
        for key, value in write.tags.items():
            tag = _validate_tag(key, value)
            tags[(tag.key, run_id)] = tag.value
        if write.end is not None:
            ends.append((run_id, RunStatus.to_string(RunStatus.from_string(str(write.end))), write.timestamp))

    with store.ManagedSessionMaker(read_only=False) as session:
        if runs:
            session.execute(SqlRun.__table__.insert(), runs)
        if reopened:
            session.execute(update(SqlRun.__table__).where(SqlRun.__table__.c.run_uuid.in_(reopened))
                            .values(status=RunStatus.to_string(RunStatus.RUNNING)))
        for key, run_id in cleared:
            session.execute(delete(SqlTag.__table__).where(and_(SqlTag.__table__.c.run_uuid == run_id,
                                                                SqlTag.__table__.c.key == key)))
        if params:
            session.execute(_insert(dialect, SqlParam.__table__).on_conflict_do_nothing(),
                            [{"key": k, "run_uuid": r, "value": v} for (k, r), v in params.items()])
        if metrics:
            rows = [{"key": k, "timestamp": t, "step": s, "run_uuid": r, "value": v, "is_nan": n}
                    for k, t, s, r, v, n in metrics]
            session.execute(_insert(dialect, SqlMetric.__table__).on_conflict_do_nothing(), rows)
            _latest(session, dialect, rows, set(fresh.values()))
        if tags:
            statement = _insert(dialect, SqlTag.__table__)
            statement = statement.on_conflict_do_update(index_elements=["key", "run_uuid"],
                                                        set_={"value": statement.excluded.value})
            session.execute(statement, [{"key": k, "run_uuid": r, "value": v} for (k, r), v in tags.items()])
        table = SqlRun.__table__
        for run_id, status, end_time in ends:
            session.execute(update(table).where(table.c.run_uuid == run_id)
                            .values(status=status, end_time=end_time))
        for run_id, end_time in (spans or {}).items():
            session.execute(update(table).where(table.c.run_uuid == run_id).values(end_time=end_time))
    for write in writes:  # committed: the new runs exist
        if write.ref.run_id is None:
            write.ref.run_id = fresh[id(write.ref)]


def _latest(session, dialect: str, rows: list[dict], fresh: set[str]) -> None:
    """Keep ``latest_metrics`` as MLflow does: per (run, key) the point with the largest
    (step, timestamp, value)."""
    table = SqlLatestMetric.__table__
    latest: dict[tuple[str, str], dict] = {}
    older = sorted({row["run_uuid"] for row in rows} - fresh)
    for start in range(0, len(older), CHUNK):
        chunk = older[start : start + CHUNK]
        for found in session.execute(select(table).where(table.c.run_uuid.in_(chunk))).mappings():
            latest[(found["run_uuid"], found["key"])] = dict(found)
    changed: dict[tuple[str, str], dict] = {}
    for row in rows:
        where = (row["run_uuid"], row["key"])
        current = latest.get(where)
        if current is None or (row["step"], row["timestamp"], row["value"]) > (
                current["step"], current["timestamp"], current["value"]):
            latest[where] = changed[where] = row
    if not changed:
        return
    statement = _insert(dialect, table)
    statement = statement.on_conflict_do_update(
        index_elements=["key", "run_uuid"],
        set_={c: statement.excluded[c] for c in ("value", "timestamp", "step", "is_nan")})
    session.execute(statement, list(changed.values()))


def read_runs(store, experiment_id: str, key_tag: str, key: str | None = None, *,
              with_params: bool = True) -> list[dict]:
    """Every active run of the experiment that carries ``key_tag`` (= ``key`` when given), with
    its tags, latest metrics and (``with_params``) params: four queries, whatever the count."""
    runs, tags = SqlRun.__table__, SqlTag.__table__
    keyed = select(tags.c.run_uuid).where(tags.c.key == key_tag, tags.c.value != "")
    if key is not None:
        keyed = keyed.where(tags.c.value == key)
    chosen = (select(runs.c.run_uuid).where(runs.c.experiment_id == int(experiment_id),
                                            runs.c.lifecycle_stage == LifecycleStage.ACTIVE,
                                            runs.c.run_uuid.in_(keyed)))
    found: dict[str, dict] = {}
    with store.ManagedSessionMaker() as session:
        for row in session.execute(select(runs.c.run_uuid, runs.c.status, runs.c.start_time, runs.c.end_time)
                                   .where(runs.c.run_uuid.in_(chosen))):
            found[row.run_uuid] = {"run_id": row.run_uuid, "status": row.status, "start_time": row.start_time,
                                   "end_time": row.end_time, "tags": {}, "metrics": {},
                                   "params": {} if with_params else None}
        for row in session.execute(select(tags.c.run_uuid, tags.c.key, tags.c.value)
                                   .where(tags.c.run_uuid.in_(chosen))):
            if row.run_uuid in found:  # not one created since the first query
                found[row.run_uuid]["tags"][row.key] = row.value
        latest = SqlLatestMetric.__table__
        for row in session.execute(select(latest.c.run_uuid, latest.c.key, latest.c.value, latest.c.is_nan)
                                   .where(latest.c.run_uuid.in_(chosen))):
            if row.run_uuid in found:
                found[row.run_uuid]["metrics"][row.key] = math.nan if row.is_nan else row.value
        if with_params:
            params = SqlParam.__table__
            for row in session.execute(select(params.c.run_uuid, params.c.key, params.c.value)
                                       .where(params.c.run_uuid.in_(chosen))):
                if row.run_uuid in found:
                    found[row.run_uuid]["params"][row.key] = row.value
    return list(found.values())
