"""Tracking stores albench must not write to: a database that is not MLflow's, one of an older or
newer MLflow's schema, a web server that is not MLflow. Every command refuses them (exit 2, the
field, the fix) and leaves the file byte for byte as it was; ``albench migrate-db`` migrates an
older database, after copying it aside."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from tests.conftest import tiny_config, write_config
from tests.servers import answering

COMMANDS = ("validate", "run", "status", "report")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config(corpus: Path, tmp_path: Path, uri: str) -> Path:
    config = tiny_config(corpus, tmp_path, embedders=[{"name": "tfidf", "model": "tfidf-svd", "dim": 8}],
                         seeds=[0], tracking={"uri": uri})
    return write_config(tmp_path / "grid.yaml", config)


def _refused_by_every_command(config: Path, said: list[str], database: Path | None = None) -> None:
    before = _digest(database) if database is not None else None
    for command in COMMANDS:
        result = CliRunner().invoke(app, [command, str(config)])
        text = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert text.startswith("error:") and "Traceback" not in result.output, (command, text)
        for phrase in said:
            assert phrase in text, (command, phrase, text)
        if database is not None:
            assert _digest(database) == before, command  # not one byte written
    assert not (config.parent / "embeddings").exists() and not (config.parent / "checkpoints").exists()


def _mlflow_database(path: Path, revision: str | None = None) -> Path:
    """An MLflow database as MLflow creates it, stopped at ``revision`` (an older MLflow's
    schema) when given, else at the pinned MLflow's."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision or "heads")
    engine.dispose()
    return path


def _older_revision(steps: int = 5) -> str:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    return list(ScriptDirectory.from_config(_get_alembic_config("")).walk_revisions())[steps].revision


def test_an_application_database_is_refused_and_left_alone(corpus, tmp_path):
    database = tmp_path / "notes.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('mine')")
    config = _config(corpus, tmp_path, f"sqlite:///{database}")
    _refused_by_every_command(config, ["tracking.uri", "is a database but not MLflow's (its tables: notes)",
                                       "fix: name another file"], database)
    with sqlite3.connect(database) as connection:
        assert [n for (n,) in connection.execute("SELECT name FROM sqlite_master")] == ["notes"]


def test_a_file_that_is_not_a_database_is_refused(corpus, tmp_path):
    database = tmp_path / "mlflow.db"
    database.write_bytes(bytes(range(256)) * 64)
    config = _config(corpus, tmp_path, f"sqlite:///{database}")
    _refused_by_every_command(config, ["tracking.uri", "is not a database", "fix: name an MLflow database file"],
                              database)


def test_an_older_mlflow_database_is_refused_until_migrate_db(corpus, tmp_path):
    database = _mlflow_database(tmp_path / "mlflow.db", _older_revision())
    original = _digest(database)
    uri = f"sqlite:///{database}"
    config = _config(corpus, tmp_path, uri)
    _refused_by_every_command(config, ["tracking.uri", "was written by an older MLflow",
                                       f"fix: `albench migrate-db {uri}`"], database)
    result = CliRunner().invoke(app, ["migrate-db", uri])
    assert result.exit_code == 0, result.output
    copies = list(tmp_path.glob("mlflow.db.before-migration-*"))
    assert len(copies) == 1 and _digest(copies[0]) == original, result.output
    assert f"kept in {copies[0]}" in " ".join(result.output.split())
    status = CliRunner().invoke(app, ["status", str(config)])
    assert status.exit_code == 0, status.output
    again = CliRunner().invoke(app, ["migrate-db", uri])
    assert again.exit_code == 0 and "nothing to migrate" in again.output, again.output


def test_a_newer_mlflow_database_is_refused(corpus, tmp_path):
    database = _mlflow_database(tmp_path / "mlflow.db")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    config = _config(corpus, tmp_path, f"sqlite:///{database}")
    _refused_by_every_command(config, ["was written by a newer MLflow (schema ffffffffffff",
                                       "fix: use it with the albench and MLflow that wrote it"], database)


@pytest.fixture
def web_server(request):
    """A real HTTP server on 127.0.0.1 that is not MLflow: ``request.param`` is the status it
    answers everything with (404: a web site; 401: a server that wants credentials)."""
    status = request.param
    with answering(status, {"WWW-Authenticate": 'Basic realm="mlflow"'} if status == 401 else {},
                   b"<html>not here</html>") as url:
        yield url


@pytest.mark.parametrize("web_server,said", [
    (404, ["is not an MLflow server (404", "fix: give the address of the MLflow server"]),
    (401, ["refused no credentials (401", "fix: put the user and password in the URI"]),
], indirect=["web_server"], ids=["a-web-site", "wants-credentials"])
def test_a_web_server_that_is_not_mlflow_is_refused(corpus, tmp_path, web_server, said):
    _refused_by_every_command(_config(corpus, tmp_path, web_server), ["tracking.uri", *said])
