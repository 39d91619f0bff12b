"""A finished grid that cannot be written (a read-only copy, another user's folder): ``status``
and ``report --out`` elsewhere read it, ``report`` into it and ``run`` refuse with exit 2 and
the fix; nothing in it changes. Run as real processes that cannot write the folder: as root,
without the capabilities that let root write anywhere (``setpriv``); as anyone else, as is."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_in_process, tiny_config, write_config, write_corpus
from tests.servers import venv_bin

ROOT_WITHOUT_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _albench(*arguments: str, cwd: Path) -> tuple[int, str]:
    prefix = ROOT_WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    done = subprocess.run([*prefix, venv_bin("albench"), *arguments], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "300"})
    return done.returncode, " ".join((done.stdout + done.stderr).split())


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv as root")
def test_a_read_only_grid_can_be_read_and_is_not_written(ray_session, tmp_path):
    grid = tmp_path / "grid"
    grid.mkdir()
    corpus = write_corpus(grid / "train.parquet", 120, seed=3)
    write_corpus(grid / "test.parquet", 60, seed=4)
    config = tiny_config(corpus, grid, embedders=[{"name": "tfidf", "model": "tfidf-svd", "dim": 8}], seeds=[0])
    assert run_in_process(config)[2].finished == 2
    path = write_config(grid / "grid.yaml", config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = _files(grid)
    modes = {p: p.stat().st_mode for p in [grid, *grid.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(stat.S_IMODE(mode) & ~0o222)
    try:
        code, text = _albench("status", str(path), cwd=elsewhere)
        assert code == 0 and "2 trials: 2 done, 0 failed, 0 running, 0 pending" in text, text
        code, text = _albench("report", str(path), "--out", str(elsewhere / "report"), cwd=elsewhere)
        assert code == 0 and (elsewhere / "report" / "index.html").is_file(), text
        assert "warning: the report was not logged to MLflow" in text and "cannot be written" in text, text
        code, text = _albench("report", str(path), cwd=elsewhere)
        assert code == 2 and "the report folder:" in text and "give --out DIR" in text, text
        code, text = _albench("run", str(path), cwd=elsewhere)
        assert code == 2 and text.startswith("error:"), text
        assert f"tracking.uri: the database {grid / 'mlflow.db'} cannot be written" in text, text
        assert "Traceback" not in text and "internal error" not in text, text
    finally:
        for p, mode in modes.items():
            p.chmod(stat.S_IMODE(mode))
    assert _files(grid) == before
