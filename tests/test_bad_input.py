"""Bad input, table-driven, against a finished grid: every case exits non-zero with one message
that names the field or file and the fix, never a traceback, and leaves every store file and
every MLflow row of the finished grid exactly as it was."""

from __future__ import annotations

import copy
import hashlib
import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from tests.conftest import run_in_process, tiny_config, write_config, write_corpus
from tests.servers import answering


@pytest.fixture(scope="module")
def grid(ray_session, tmp_path_factory):
    """A finished two-trial grid; its config as a dict and its working folder."""
    workdir = tmp_path_factory.mktemp("finished")
    corpus = write_corpus(workdir / "train.parquet", 120, seed=3)
    write_corpus(workdir / "test.parquet", 60, seed=4)
    config = tiny_config(corpus, workdir, embedders=[{"name": "tfidf", "model": "tfidf-svd", "dim": 8}],
                         seeds=[0])
    _, _, summary, _ = run_in_process(config)
    assert summary.finished == 2
    return config, workdir


def snapshot(workdir: Path) -> dict:
    """Every file's bytes (the store, checkpoints, corpus) and every row of every MLflow table."""
    files = {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(workdir.rglob("*")) if p.is_file() and p.name != "mlflow.db"
             and "albench-init.lock" not in p.name}
    with sqlite3.connect(f"file:{workdir / 'mlflow.db'}?mode=ro", uri=True) as connection:
        tables = [n for (n,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {t: sorted(map(repr, connection.execute(f"SELECT * FROM {t}"))) for t in tables}
    return {"files": files, "rows": rows}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _file(name: str, content: bytes):
    def make(config, workdir, scratch):
        path = scratch / name
        path.write_bytes(content)
        config["datasets"][0]["source"]["train"] = str(path)
        return config
    return make


def _set(section: str, key: str, value):
    def make(config, workdir, scratch):
        config.setdefault(section, {})[key] = value(scratch) if callable(value) else value
        return config
    return make


def _a_file(scratch: Path) -> Path:
    path = scratch / "a-file"
    path.write_text("not a folder")
    return path


def _second(entries: str, name: str):
    def make(config, workdir, scratch):
        twin = dict(config[entries][0], name=name)
        config[entries].append(twin)
        return config
    return make


def _loop(scratch: Path) -> str:
    """A folder path that runs through a symbolic link loop (a -> b -> a)."""
    (scratch / "loop-a").symlink_to(scratch / "loop-b")
    (scratch / "loop-b").symlink_to(scratch / "loop-a")
    return str(scratch / "loop-a" / "checkpoints")


def _scores(config, workdir, scratch):
    """Labels that are a continuous score: 60 distinct non-integer numbers."""
    frame = pd.read_parquet(config["datasets"][0]["source"]["train"])
    frame["label"] = [round(0.01 * i + 0.005, 3) for i in range(len(frame))]
    frame.to_parquet(scratch / "scores.parquet")
    config["datasets"][0]["source"]["train"] = str(scratch / "scores.parquet")
    return config


SECRET = "s3cr3t-pw"
"""A password in a tracking URI: no output of any case may show it."""


def _all_at_once(config, workdir, scratch):
    config["tracking"] = {"uri": "foo://nowhere"}
    config["store"]["path"] = str(_a_file(scratch))
    config["datasets"][0]["source"]["train"] = str(scratch / "missing.parquet")
    return config


CASES = [
    # (id, how the config is broken, what the message must say: the field or file, and the fix)
    ("parquet-that-is-text", _file("t.parquet", b"text,label\nhello,a\n"),
     ["datasets[topics].source.train", "is not a readable Parquet file", "give a Parquet file"]),
    ("parquet-truncated", _file("t.parquet", b"PAR1\x00\x01"),
     ["datasets[topics].source.train", "is not a readable Parquet file"]),
    ("csv-that-is-binary", _file("t.csv", bytes(range(256)) * 4), ["source.train", "save it as UTF-8 CSV"]),
    ("csv-empty", _file("t.csv", b""), ["source.train", "is empty (0 bytes)", "save it as UTF-8 CSV"]),
    ("csv-header-only", _file("t.csv", b"text,label\n"), ["source.train", "has column names but no rows"]),
    ("markup-in-a-path", _file("[red]x[bold].parquet", b"nope"), ["[red]x[bold].parquet"]),
    ("tracking-under-a-file", _set("tracking", "uri", lambda s: f"sqlite:///{_a_file(s)}/mlflow.db"),
     ["tracking.uri", "which is a file, not a folder", "fix: choose a path in a folder"]),
    ("tracking-unknown-scheme", _set("tracking", "uri", "foo://nowhere"),
     ["tracking.uri", "'foo'", "fix: use one of sqlite://"]),
    ("tracking-unwritable", _set("tracking", "uri", "sqlite:////proc/albench-test/mlflow.db"),
     ["tracking.uri", "cannot be created", "fix: choose a writable folder"]),
    ("tracking-server-down", _set("tracking", "uri", lambda s: f"http://127.0.0.1:{_free_port()}"),
     ["tracking.uri: no MLflow server answers", "fix: start it"]),
    ("store-path-is-a-file", _set("store", "path", lambda s: str(_a_file(s))),
     ["store.path", "is a file, not a folder", "fix: give a folder path"]),
    ("store-path-unwritable", _set("store", "path", "/proc/albench-test/store"),
     ["store.path", "/proc is not writable", "fix: choose a writable folder"]),
    ("checkpoints-is-a-file", _set("store", "checkpoints", lambda s: str(_a_file(s))),
     ["store.checkpoints", "is a file, not a folder"]),
    ("same-data-two-names", _second("datasets", "topics-again"),
     ["datasets[1] (topics-again): the same rows, split and labels as datasets[0] (topics)",
      "fix: remove one of the two entries"]),
    ("same-embedder-two-names", _second("embedders", "tfidf-again"),
     ["embedders[1] (tfidf-again): the same model and settings as embedders[0] (tfidf)", "fix: remove one"]),
    ("unknown-strategy", lambda c, w, s: (c["strategies"].append({"name": "badgee"}), c)[1],
     ["strategies[2].name: unknown query strategy 'badgee'; valid names:"]),
    ("two-bad-parameters", lambda c, w, s: (c["strategies"].append(
        {"name": "dropquery", "params": {"n_drops": 0, "drop_rate": 2}}), c)[1],
     ["strategies[2].params.n_drops: must be an int >= 1", "strategies[2].params.drop_rate: must be"]),
    ("budget-too-large", lambda c, w, s: (c["protocol"].update(cycles=100), c)[1],
     ["protocol:", "lower protocol.cycles/budget"]),
    ("checkpoints-symlink-loop", _set("store", "checkpoints", _loop),
     ["store.checkpoints", "loop-a", "symbolic link", "fix: correct or remove"]),
    ("tracking-driver-missing", _set("tracking", "uri", f"mysql://albench:{SECRET}@127.0.0.1:1/grid"),
     ["tracking.uri", "'mysql://albench:***@127.0.0.1:1/grid'", "needs the Python package 'mysqlclient'",
      "fix: pip install 'mysqlclient'"]),
    ("path-unset-variable", _set("store", "path", "${ALBENCH_NO_SUCH_VARIABLE}/store"),
     ["store.path", "${ALBENCH_NO_SUCH_VARIABLE}", "not set", "fix: set it"]),
    ("labels-that-are-scores", _scores,
     ["datasets[topics].source.label_column", "non-integer numbers", "datasets[topics].float_labels: true"]),
    ("name-over-mlflow-limit", lambda c, w, s: dict(c, name="n" * 1000),
     ["name: 1000 characters, over MLflow's limit of 500", "fix: shorten name"]),
    ("postgresql-down", _set("tracking", "uri",
                             lambda s: f"postgresql+psycopg://albench:{SECRET}@127.0.0.1:{_free_port()}/grid"),
     ["tracking.uri: cannot connect to the database server of 'postgresql+psycopg://albench:***@127.0.0.1",
      "Connection refused", "fix: start it"]),
    ("databricks-without-credentials", _set("tracking", "uri", "databricks://nowhere"),
     ["tracking.uri", "needs Databricks credentials", "fix: set DATABRICKS_HOST and DATABRICKS_TOKEN"]),
    ("all-problems-at-once", _all_at_once,
     ["3 problem", "tracking.uri", "store.path", "datasets[topics].source.train"]),
]


@pytest.mark.parametrize("make,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error_and_touches_nothing(grid, tmp_path, make, expected):
    config, workdir = grid
    before = snapshot(workdir)
    broken = make(copy.deepcopy(config), workdir, tmp_path)
    path = write_config(tmp_path / "broken.yaml", broken)
    for command in ("validate", "run"):
        result = CliRunner().invoke(app, [command, str(path)])
        text = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output and text.startswith("error:"), text
        for phrase in expected:
            assert phrase in text, (command, phrase, text)
        assert SECRET not in result.output, text
    assert snapshot(workdir) == before


def _random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "random.yaml"
    path.write_bytes(bytes(range(256))[::-1] * 8)
    return path


def _a_folder(tmp_path: Path) -> Path:
    (tmp_path / "configs").mkdir()
    return tmp_path / "configs"


def _twice(config: dict):
    def make(tmp_path: Path) -> Path:
        path = write_config(tmp_path / "twice.yaml", config)
        path.write_text(path.read_text() + "seeds:\n- 7\n")
        return path
    return make


@pytest.mark.parametrize("make,expected", [
    (_random_bytes, ["random.yaml: is not UTF-8 text", "fix: name the YAML config file"]),
    (_a_folder, ["configs: is a folder, not a config file", "fix: name the YAML file in it"]),
    ("twice", ["duplicate key 'seeds'", "again on line", "fix: keep one of the two"]),
], ids=["random-bytes", "a-folder", "duplicate-key"])
def test_a_config_file_that_is_not_a_config_is_a_clear_error(grid, tmp_path, make, expected):
    """Every command: exit 2, the file and the fix, no internal error, nothing touched."""
    config, workdir = grid
    path = _twice(config)(tmp_path) if make == "twice" else make(tmp_path)
    before = snapshot(workdir)
    for command in ("validate", "run", "status", "report"):
        result = CliRunner().invoke(app, [command, str(path)])
        text = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert "Traceback" not in result.output and text.startswith("error:"), text
        for phrase in expected:
            assert phrase in text, (command, phrase, text)
    assert snapshot(workdir) == before


def test_dropped_rows_are_counted_per_split_in_validate_and_run(grid, tmp_path):
    config, _ = grid
    frame = pd.read_parquet(config["datasets"][0]["source"]["train"])
    frame.loc[:9, "text"] = "   "
    frame.loc[10:12, "label"] = None
    frame.to_parquet(tmp_path / "holes.parquet")
    broken = copy.deepcopy(config)
    broken["datasets"][0]["source"]["train"] = str(tmp_path / "holes.parquet")
    broken["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    broken["store"] = {"path": str(tmp_path / "store"), "checkpoints": str(tmp_path / "ckpt")}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path / "holes.yaml", broken))])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert ("warning: datasets[topics]: train: 13 of 120 rows dropped (10 with an empty text, "
            "3 without a label)") in text, text
    assert not (tmp_path / "mlflow.db").exists()  # validate runs nothing, creates nothing


@pytest.fixture
def gateway_whose_mlflow_is_down():
    """A real HTTP server on 127.0.0.1 answering 503 to everything, as a reverse proxy does when
    the MLflow server behind it is down (MLflow's client would retry each call for minutes)."""
    with answering(503) as url:
        yield url


@pytest.mark.parametrize("down", ["nothing-listens", "gateway-answers-503"])
def test_an_mlflow_server_that_is_down_is_refused_before_any_work(grid, tmp_path, request, down):
    """validate, run and status: exit 2 with tracking.uri and the fix, no embedding, no lock
    taken, no run recorded anywhere, no checkpoint written."""
    config, workdir = grid
    if down == "nothing-listens":
        uri, said = f"http://127.0.0.1:{_free_port()}", "tracking.uri: no MLflow server answers at"
    else:
        uri = request.getfixturevalue("gateway_whose_mlflow_is_down")
        said = f"tracking.uri: the MLflow server at {uri} answers 503"
    broken = copy.deepcopy(config)
    broken["tracking"] = {"uri": uri}
    broken["store"] = {"path": str(tmp_path / "store"), "checkpoints": str(tmp_path / "checkpoints")}
    path = write_config(tmp_path / "down.yaml", broken)
    before = snapshot(workdir)
    for command in ("validate", "run", "status"):
        result = CliRunner().invoke(app, [command, str(path)])
        text = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert text.startswith("error:") and "Traceback" not in result.output, text
        assert said in text and "fix: start it" in text, (command, text)
    assert not (tmp_path / "store").exists() and not (tmp_path / "checkpoints").exists()
    assert snapshot(workdir) == before


def test_status_creates_no_store_and_no_experiment(grid, tmp_path):
    config, workdir = grid
    fresh = dict(copy.deepcopy(config), tracking={"uri": f"sqlite:///{tmp_path / 'new.db'}"})
    result = CliRunner().invoke(app, ["status", str(write_config(tmp_path / "fresh.yaml", fresh))])
    assert result.exit_code == 0, result.output
    assert "2 trials: 0 done, 0 failed, 0 running, 2 pending" in " ".join(result.output.split())
    assert not (tmp_path / "new.db").exists()
    other = dict(copy.deepcopy(config), name="never-run")  # the finished store, another experiment
    before = snapshot(workdir)
    result = CliRunner().invoke(app, ["status", str(write_config(tmp_path / "other.yaml", other))])
    assert result.exit_code == 0 and "2 pending" in result.output, result.output
    assert snapshot(workdir) == before


def test_an_unexpected_error_is_logged_not_shown(tmp_path, monkeypatch, capsys):
    """A bug (here: one planted in the plan step) ends with where to report it and a log file."""
    import orchestrator.cli
    import orchestrator.grid

    def broken(config, writing=True):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(orchestrator.grid, "prepare_plan", broken)
    monkeypatch.setenv("ALBENCH_LOG_DIR", str(tmp_path / "logs"))
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "t.parquet", tmp_path))
    monkeypatch.setattr("sys.argv", ["albench", "validate", str(config)])
    with pytest.raises(SystemExit) as stopped:
        orchestrator.cli.main()
    assert stopped.value.code == orchestrator.cli.EXIT_INTERNAL
    out = " ".join(capsys.readouterr().out.split())
    assert "internal error: RuntimeError: planted bug" in out
    assert "send the command, your config and that file to albench's maintainers" in out, out
    assert "github.com/albench" not in out  # no made-up address
    assert "Traceback" not in out
    logs = list((tmp_path / "logs").glob("albench-error-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text() and "planted bug" in logs[0].read_text()


def test_a_huge_binary_csv_is_refused_without_reading_it(corpus, tmp_path):
    """400 MB of NUL bytes named .csv (sparse: no disk used) is refused from its first bytes,
    in seconds, not after pandas read a 400 MB "header" (tens of seconds, GBs of memory)."""
    import time

    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:
        handle.truncate(400 * 2**20)
    config = tiny_config(corpus, tmp_path)
    config["datasets"][0]["source"]["train"] = str(huge)
    path = write_config(tmp_path / "huge.yaml", config)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["validate", str(path)])
    elapsed = time.monotonic() - started
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "source.train" in text and "holds NUL bytes" in text, text
    assert elapsed < 10, elapsed
