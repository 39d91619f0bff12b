"""Whether a database is MLflow's, of the pinned MLflow's schema, before MLflow opens it.

MLflow's SQL store creates its tables in any database it is given that lacks them (an
application's own SQLite file included) and migrates an older schema in place, one way, without
a backup. albench refuses both (``TrackingURIError``: the field, what the database is, the fix):
a new, empty database is still created; a database of an older MLflow is migrated only by
``albench migrate-db`` (``migrate``), which copies a SQLite file aside first.
"""

from __future__ import annotations

import datetime
import shutil
import time
from pathlib import Path
from urllib.parse import quote

from orchestrator.tracking.base import TrackingURIError, masked

CONNECT_SECONDS = 10
"""How long a database server may take to accept a connection (PostgreSQL, MySQL)."""


def _engine(uri: str, read_only: bool = True):
    import sqlalchemy

    arguments = {}
    if uri.startswith(("postgresql", "mysql")):
        arguments["connect_args"] = {"connect_timeout": CONNECT_SECONDS}
    if uri.startswith("sqlite:") and read_only:  # nothing is created or changed by looking
        from orchestrator.tracking.mlflow_uri import sqlite_path

        path = sqlite_path(uri)
        if path is not None:
            return sqlalchemy.create_engine(f"sqlite:///file:{quote(str(path.absolute()))}?mode=ro&uri=true")
    return sqlalchemy.create_engine(uri, **arguments)


def schema_state(uri: str, read_only: bool = True) -> tuple[str, str | None, list[str]]:
    """(state, revision, tables) of the database at ``uri``; state is ``empty`` (MLflow may
    create its tables), ``current``, ``older``, ``newer`` or ``foreign`` (not MLflow's).
    ``read_only=False``: a SQLite file opened for writing, so a hot journal is rolled back."""
    import sqlalchemy
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    engine = _engine(uri, read_only)
    try:
        with engine.connect() as connection:
            tables = sorted(sqlalchemy.inspect(connection).get_table_names())
            mlflow_tables = [t for t in tables if not t.startswith("alembic_")]
            revision = (MigrationContext.configure(connection).get_current_revision()
                        if "alembic_version" in tables else None)
    finally:
        engine.dispose()
    if not mlflow_tables:
        return "empty", revision, tables
    if not {"experiments", "runs", "metrics"} <= set(tables):
        return "foreign", revision, tables
    head = _get_latest_schema_revision()
    if revision == head:
        return "current", revision, tables
    known = {r.revision for r in ScriptDirectory.from_config(_get_alembic_config("")).walk_revisions()}
    return ("older" if revision is None or revision in known else "newer"), revision, tables


def _settled_state(uri: str, settle: float = 2.0, limit: float = 120.0):
    """``schema_state``, waited out while another process creates or migrates the tables of a
    database server (what looks foreign or older and changes from one look to the next). A
    SQLite file needs no wait: its creation holds ``creation_lock``. A SQLite file left with a
    hot journal by a writer killed mid-transaction cannot be read read-only; it is then opened as
    any SQLite client would, which rolls the cut-short transaction back (nothing else changes)."""
    from sqlalchemy.exc import OperationalError

    try:
        found = schema_state(uri)
    except OperationalError as exc:
        from orchestrator.tracking.mlflow_uri import sqlite_path

        path = sqlite_path(uri) if uri.startswith("sqlite:") else None
        if path is None or "readonly database" not in str(exc) or not Path(f"{path}-journal").exists():
            raise
        found = schema_state(uri, read_only=False)
    deadline = time.monotonic() + limit
    while found[0] in ("foreign", "older") and not uri.startswith("sqlite:") and time.monotonic() < deadline:
        time.sleep(settle)
        again = schema_state(uri)
        if again == found:
            break
        found = again
    return found


def check_schema(uri: str) -> None:
    """Raise ``TrackingURIError`` unless ``uri`` is an empty database or one of the pinned
    MLflow's schema; a server that cannot be reached is said in words."""
    import mlflow
    from sqlalchemy.exc import DatabaseError, OperationalError

    shown = masked(uri)
    try:
        state, revision, tables = _settled_state(uri)
    except OperationalError as exc:
        reason = masked(" ".join(str(exc.orig or exc).split())[:300])
        if "database is locked" in reason:
            return  # a writer holds it for longer than SQLite's wait: an MLflow database in use
        if uri.startswith("sqlite:"):
            raise TrackingURIError(f"tracking.uri: {shown!r} cannot be read as an SQLite database "
                                   f"({reason}); fix: name an MLflow database file, or a new path "
                                   "(a new database is created)") from None
        raise TrackingURIError(f"tracking.uri: cannot connect to the database server of {shown!r} "
                               f"({reason}); fix: start it (or check its host, port, user and "
                               "password), then rerun") from None
    except DatabaseError as exc:
        reason = masked(" ".join(str(exc.orig or exc).split())[:300])
        raise TrackingURIError(f"tracking.uri: {shown!r} is not a database ({reason}); fix: name an "
                               "MLflow database file, or a new path (a new database is created)") from None
    if state == "foreign":
        listed = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
        raise TrackingURIError(
            f"tracking.uri: {shown!r} is a database but not MLflow's (its tables: {listed}); "
            "albench does not add MLflow's tables to it; fix: name another file or database "
            "(a new one is created)")
    if state == "older":
        raise TrackingURIError(
            f"tracking.uri: {shown!r} was written by an older MLflow (schema {revision or 'unversioned'}; "
            f"MLflow {mlflow.__version__} needs a migration, one way); fix: `albench migrate-db "
            f"{shown}` (it copies a SQLite file aside first), or name another database")
    if state == "newer":
        raise TrackingURIError(
            f"tracking.uri: {shown!r} was written by a newer MLflow (schema {revision}, unknown to "
            f"MLflow {mlflow.__version__}, which albench pins); fix: use it with the albench and "
            "MLflow that wrote it, or name another database")


def migrate(uri: str) -> tuple[str, Path | None]:
    """Migrate an older MLflow database at ``uri`` to the pinned MLflow's schema: a SQLite file
    is copied aside first (the copy's path is returned). Returns the state it found."""
    from mlflow.store.db.utils import _upgrade_db, create_sqlalchemy_engine

    from orchestrator.tracking.mlflow_uri import sqlite_path

    state, revision, _ = schema_state(uri)
    if state != "older":
        return state, None
    copy = None
    path = sqlite_path(uri)
    if path is not None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        copy = path.with_name(f"{path.name}.before-migration-{revision or 'unversioned'}-{stamp}")
        shutil.copy2(path, copy)
    engine = create_sqlalchemy_engine(uri)
    try:
        _upgrade_db(engine)
    finally:
        engine.dispose()
    return state, copy


def migrate_database(uri: str) -> str:
    """``albench migrate-db``: migrate the older MLflow database at ``uri`` (a SQLite file copied
    aside first); what was done, in words. ``TrackingURIError`` when there is nothing it may
    migrate (no database, not MLflow's, a newer MLflow's, unreachable)."""
    from orchestrator.tracking.mlflow_uri import check_uri, creation_lock, store_exists

    if not store_exists(uri):
        raise TrackingURIError(f"{masked(uri)!r}: no database there; fix: give the tracking.uri of "
                               "an existing MLflow database")
    try:
        check_uri(uri)
    except TrackingURIError as exc:
        if "older MLflow" not in str(exc):
            raise
    with creation_lock(uri):
        state, copy = migrate(uri)
    if state != "older":
        return f"{masked(uri)} is already at this MLflow's schema: nothing to migrate"
    kept = f"; the database as it was is kept in {copy}" if copy else ""
    return f"migrated {masked(uri)} to this MLflow's schema{kept}"
