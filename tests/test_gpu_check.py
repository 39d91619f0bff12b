"""``bench/gpu_check.py --cpu --small``: the GPU check's code paths on the CPU, so the script that
is the first thing run on a GPU cannot rot. It starts its own local Ray (a subprocess, as on a
GPU host); every part must finish, and the figures must be sane: the stage's vectors equal the
plain loops' within float32 rounding, every strategy selects the same rows through the torch
kernels as through numpy, the grid finishes with a float32 store entry and its MLflow run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_small(tmp_path):
    from strategies import QUERY_STRATEGIES

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--cpu", "--small",
                           "--out", str(tmp_path)], check=False, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=400)
    assert (tmp_path / "gpu-check.json").is_file(), done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu-check.json").read_text())
    parts = result["parts"]
    assert set(parts) == {"minilm", "decoder", "strategies", "grid"}
    errors = {name: part.get("error") for name, part in parts.items() if part["status"] != "ok"}
    assert not errors, (errors, done.stdout[-3000:])
    assert done.returncode == 0
    assert result["meta"]["card"] is None and result["meta"]["ray"].get("GPU", 0) == 0

    minilm = parts["minilm"]
    assert (minilm["device"], minilm["precision"]) == ("cpu", "float32")
    assert minilm["vectors"]["max_abs_diff"] < 1e-5 and minilm["vectors"]["min_cosine"] > 0.99999
    assert minilm["vectors"]["rows"] == 32 and minilm["vectors"]["nonfinite_rows"] == [0, 0]
    assert minilm["plain_texts_per_s"] > 0 and minilm["stage_texts_per_s"] > 0 and minilm["ratio"] > 0

    decoder = parts["decoder"]
    assert decoder["precision_auto"] == "float32" and decoder["model_dtype"] == "torch.float32"
    assert decoder["shape"]["num_hidden_layers"] == 2 and decoder["linear_params"] > 0
    assert decoder["vectors"]["max_abs_diff"] < 1e-4 and decoder["vectors"]["min_cosine"] > 0.9999
    assert decoder["vectors"]["nonfinite_rows"] == [0, 0]
    for path in ("stage", "plain"):
        assert decoder[path]["texts_per_s"] > 0 and decoder[path]["tflops"] >= 0
        assert decoder[path]["mfu"] is None  # no card, no peak: no MFU invented
    assert decoder["real_tokens"] > decoder["texts"]

    strategies = parts["strategies"]["results"]
    assert sorted(strategies) == QUERY_STRATEGIES.names()
    # the torch kernels ran (on the CPU) for the strategies that have them, and chose the same rows
    kernels = {name: r for name, r in strategies.items() if r["uses_device"]}
    assert set(kernels) >= {"badge", "coreset", "probcover"}
    assert all(r["same"] is True and r["overlap"] == 1.0 and r["device_ran"] == ["cpu"]
               for r in kernels.values()), kernels
    assert all(r["same"] is None and r["cpu_seconds"] >= 0 for name, r in strategies.items()
               if name not in kernels)

    grid = parts["grid"]
    assert grid["finished"] == grid["trials"] == 4 and not grid["failed"]
    assert grid["store_entry"]["precision"] == grid["expected_precision"] == "float32"
    assert grid["store_entry"]["device"] == "cpu"
    run = grid["mlflow_embedding_run"]
    assert run["status"] == "FINISHED" and (run["device"], run["precision"]) == ("cpu", "float32")
    assert run["texts_per_s"] > 0
    assert grid["trajectory_worker_sees"]["cuda_available"] is False

    text = (tmp_path / "gpu-check.md").read_text()
    for title in ("1. MiniLM", "2. Qwen2-7B", "3. Strategies", "4. A tiny grid"):
        assert title in text
    assert "**error**" not in text and "skipped" not in text.split("## 2.")[1]
