"""A tracking URI's password is used, never shown: an MLflow server behind HTTP basic auth is
reached with ``http://user:password@host:port`` (a real ``mlflow server`` behind a real proxy
that answers 401 without them), and the password appears nowhere albench writes or prints: the
terminal, the report, MLflow's database (params, tags, errors) or its artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from tests.conftest import tiny_config, write_config
from tests.servers import holding_proxy, mlflow_server

SECRET = "pw-8d1f0c-not-shown"


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.fixture
def no_tracking_credentials(monkeypatch):
    """MLflow's credential variables unset here, and unset again after the test (albench sets
    them in its process from the URI)."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_an_mlflow_server_behind_basic_auth_takes_the_uri_credentials_and_never_shows_them(
        ray_session, corpus, tmp_path, no_tracking_credentials, monkeypatch):
    server_root = tmp_path / "server"
    with mlflow_server(f"sqlite:///{server_root / 'mlflow.db'}", server_root) as server, \
            holding_proxy(server.uri, basic_auth=("albench", SECRET)) as proxy:
        work = tmp_path / "work"
        work.mkdir()
        plain = tiny_config(corpus, work, embedders=[{"name": "tfidf", "model": "tfidf-svd", "dim": 8}],
                            seeds=[0], tracking={"uri": proxy.uri})
        refused = CliRunner().invoke(app, ["run", str(write_config(work / "plain.yaml", plain))])
        text = " ".join(refused.output.split())
        assert refused.exit_code == 2, refused.output
        assert "refused no credentials (401" in text and "fix: put the user and password in the URI" in text

        uri = proxy.uri.replace("http://", f"http://albench:{SECRET}@")
        config = dict(plain, tracking={"uri": uri})
        path = write_config(work / "grid.yaml", config)
        for command in ("validate", "run", "status", "report"):
            result = CliRunner().invoke(app, [command, str(path)])
            assert result.exit_code == 0, (command, result.output, result.exception)
            assert SECRET not in result.output, (command, result.output)
            if command == "run":
                text = " ".join(result.output.split())
                assert f"at {proxy.uri.replace('http://', 'http://albench:***@')}" in text, text
                assert "finished 2, failed 0" in text, text
        assert proxy.refused >= 1  # the run without credentials
        plain_path = work / "plain.yaml"  # credentials in MLflow's own variables work as well
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "albench")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        wrong = CliRunner().invoke(app, ["validate", str(plain_path)])
        assert wrong.exit_code == 2, wrong.output
        assert "refused the credentials of MLFLOW_TRACKING_USERNAME/PASSWORD (401" in " ".join(wrong.output.split())
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
        right = CliRunner().invoke(app, ["validate", str(plain_path)])
        assert right.exit_code == 0 and SECRET not in right.output, right.output

    gone = " ".join(CliRunner().invoke(app, ["validate", str(path)]).output.split())
    assert "tracking.uri: no MLflow server answers at http://albench:***@" in gone, gone  # an error
    assert SECRET not in gone
    assert _files_holding(work, SECRET) == [path]  # the config itself, nothing albench wrote
    assert _files_holding(server_root, SECRET) == []  # MLflow's database and artifacts
