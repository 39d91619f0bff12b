"""``albench validate --offline``: the study's example config checks without the hub; a config
with a bad embedder name, hub id or strategy fails naming the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from orchestrator.cli import app

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nfl-2025.yaml"


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", "--offline", str(path)])
    return result.exit_code, " ".join(result.output.split())


def test_the_study_config_validates_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out = validate(EXAMPLE)
    assert code == 0, out
    assert "valid offline" in out and "6 datasets x 7 embedders x 2 initial pools x 10 strategies x 5 seeds" in out
    assert "trust_remote_code is on" in out
    config = yaml.safe_load(EXAMPLE.read_text())
    assert all(e.get("precision") == "bfloat16" for e in config["embedders"][:5])
    assert all(d["source"]["type"] == "huggingface" for d in config["datasets"])


def test_bad_names_fail_offline(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = yaml.safe_load(EXAMPLE.read_text())
    broken = dict(config, embedders=[*config["embedders"][:6], {"name": "x", "model": "minilm-l7"}])
    path = tmp_path / "bad-embedder.yaml"
    path.write_text(yaml.safe_dump(broken))
    code, out = validate(path)
    assert code != 0 and "embedders[6]" in out and "minilm-l7" in out, out

    broken = dict(config, strategies=[{"name": "margn"}])
    path.write_text(yaml.safe_dump(broken))
    code, out = validate(path)
    assert code != 0 and "strategies[0].name" in out, out

    broken = dict(config, datasets=[{"name": "d", "source": {"type": "huggingface", "path": "a b/c"}}])
    path.write_text(yaml.safe_dump(broken))
    code, out = validate(path)
    assert code != 0 and "datasets[0].source.path" in out, out

    broken = dict(config, embedders=[{"name": "q", "model": "Qwen/Qwen3-Embedding-8B",
                                      "model_kwargs": {"attn_implementation": "fast"}}])
    path.write_text(yaml.safe_dump(broken))
    code, out = validate(path)
    assert code != 0 and "embedders[0].model_kwargs.attn_implementation" in out, out
