"""The GPU path in one call: albench's embedding stage and strategy kernels on a CUDA device,
against plain loops, with everything a run needs built here (no hub, ``HF_HUB_OFFLINE=1``).

    python bench/gpu_check.py                      # one H100/H200, about 5-8 minutes
    python bench/gpu_check.py --cpu --small        # CPU paths, tiny shapes (the CI test, < 1 min)

Four parts, each guarded (a failure is recorded with its error and the next part runs), under
one time budget (``--budget-s``; a part that would not fit is skipped, and says so):

1. ``minilm``: all-MiniLM-L6-v2 (the built-in, ``precision: auto``) through the stage's worker
   (``EmbeddingActor.embed``: texts tokenized once, length-planned batches, shards written and
   verified, in this process, warm) against ``SentenceTransformer.encode`` of the same texts in the
   same precision: texts/s of each (the best of interleaved pairs), their ratio (target >= 0.95),
   max |difference| of the vectors; then the stage itself through Ray (``embedding_stage``: the
   actor on the GPU, model load and store read back included), its vectors against the plain ones.
2. ``decoder``: a Qwen2-7B-shaped decoder (``tests.tiny_models.QWEN2_7B``, seeded random weights,
   saved in bfloat16 as a plain transformers folder; the MiniLM WordPiece tokenizer) used as
   albench uses a decoder embedder (``pooling: lasttoken``, ``padding_side: left``, an
   ``instruction``, ``precision: auto``), through ``EmbeddingActor.embed`` against a plain PyTorch
   loop on the same weights (tokenize a batch, forward, last token, L2-normalise, copy back):
   texts/s, TFLOP/s and MFU (2 x linear-layer parameters x real tokens / s over the card's dense
   bf16 peak: 989 TFLOP/s for H100 and H200), peak memory, the precision ``auto`` resolved to,
   and what resolving (hashing) and loading the 14 GiB folder cost.
3. ``strategies``: every registered query strategy on one synthetic pool (100k x 1024, 20
   classes, 1000 labelled, a batch of 100) with ``QueryContext.device`` ``cuda`` (what
   ``resources.strategy_device: cuda`` gives the trajectory loop) against ``cpu``, both with one
   BLAS thread as inside a trajectory: the same selections (no GPU tolerance is documented: any
   difference is reported, with the overlap) and the speed-up. A strategy that never consults
   ``strategies.kernels.kernel_device`` runs the same code on both sides and is not rerun.
4. ``grid``: a tiny grid end to end (real local Ray, SQLite MLflow in a temp folder, MiniLM with
   ``precision: auto``, ``strategy_device: cuda``): trials finished and failed, the store
   entry's precision and device, the embedding stage's MLflow run, and whether an actor with
   Ray's trajectory options (CPUs only) sees the GPU.

``--cpu`` hides any GPU: the same code on the CPU paths, the "cuda" side of part 3 then being
the torch kernels on the CPU (``kernel_device`` patched as the strategy tests do) against
numpy. ``--small`` uses tiny shapes (a 2-layer Qwen2, a 3000-row pool, a 3-cycle grid).
Writes ``gpu-check.json`` and ``gpu-check.md`` (a readable summary) to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

PEAK_BF16 = {"H100": 989e12, "H200": 989e12}
"""Dense bf16 TFLOP/s by card name (SXM figures; H200 has H100's tensor cores)."""
WORDS = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "with", "that", "it", "as",
         "this", "by", "market", "stock", "bank", "price", "profit", "shares", "investor", "rate",
         "economy", "match", "goal", "team", "player", "score", "coach", "league", "season", "win",
         "stadium", "cell", "atom", "experiment", "theory", "energy", "lab", "research",
         "molecule", "physics", "data", "film", "story", "music", "plot", "acting", "wonderful",
         "boring", "minister", "election", "vote", "parliament", "law", "court", "storm",
         "weather", "rain", "flood", "city", "river", "mountain", "travel", "hotel", "flight"]
TOPICS = {
    "sport": "match goal team player score coach league season win stadium",
    "finance": "market stock bank price profit shares investor trade rate economy",
    "science": "cell atom experiment theory energy lab research molecule physics data",
}

SHAPES = {  # full (one GPU) and small (CI, CPU)
    "full": {"minilm_texts": 50_000, "minilm_pairs": 3, "minilm_batch": 512, "words": 22.0,
             "minilm_through_ray": True, "grid_actors": None,
             "decoder": {}, "decoder_texts": 6000, "decoder_batch": 128,
             "pool": (100_000, 1024, 20), "labelled": 1000, "query": 100,
             "grid_rows": (2000, 400), "grid_cycles": 5},
    "small": {"minilm_texts": 32, "minilm_pairs": 1, "minilm_batch": 64, "words": 6.0,
              "minilm_through_ray": False, "grid_actors": 1,
              "decoder": {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
                          "num_attention_heads": 4, "num_key_value_heads": 2,
                          "max_position_embeddings": 512},
              "decoder_texts": 64, "decoder_batch": 16,
              "pool": (3000, 32, 20), "labelled": 100, "query": 20,
              "grid_rows": (150, 60), "grid_cycles": 3},
}
NEEDS_SECONDS = {"minilm": 30, "decoder": 150, "strategies": 90, "grid": 40}
"""What each part needs at least on a GPU (skipped, and said, when less of the budget is left)."""


class Check:
    """The run's state: timestamps, the budget, the JSON written after every part."""

    def __init__(self, args) -> None:
        self.args = args
        self.began = time.monotonic()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="albench-gpu-check-"))
        self.shape = SHAPES["small" if args.small else "full"]
        self.result: dict = {"meta": {}, "parts": {}}

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} +{self.elapsed():6.1f}s] {message}", flush=True)

    def part(self, name: str, fn) -> None:
        left = self.args.budget_s - self.elapsed()
        need = 0 if self.args.small else NEEDS_SECONDS.get(name, 0)
        if left < need:
            self.result["parts"][name] = {"status": "skipped",
                                          "error": f"time budget: {left:.0f} s left, needs ~{need} s"}
            self.log(f"{name}: skipped ({left:.0f} s of the budget left)")
            self.write()
            return
        self.log(f"{name}: start")
        began = time.monotonic()
        record: dict = {}
        try:
            fn(self, record)
            record["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 (recorded; the next part runs)
            record["status"] = "error"
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc()[-4000:]
            self.log(f"{name}: ERROR {record['error']}")
        record["seconds"] = round(time.monotonic() - began, 2)
        self.result["parts"][name] = record
        self.log(f"{name}: {record['status']} in {record['seconds']:.1f} s")
        free_gpu()
        self.write()

    def write(self) -> None:
        self.result["meta"]["elapsed_s"] = round(self.elapsed(), 1)
        (self.out / "gpu-check.json").write_text(json.dumps(self.result, indent=1, default=str) + "\n")
        (self.out / "gpu-check.md").write_text(summary(self.result))


# ------------------------------------------------------------------------------------ helpers


def free_gpu() -> None:
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device() -> str:
    from workers.embedding import pick_device

    return pick_device()


def texts(n: int, seed: int, median_words: float = 22.0) -> list[str]:
    """Synthetic texts, lognormal word counts (median ``median_words``, 3 to 200 words)."""
    rng = np.random.default_rng(seed)
    counts = np.clip(np.rint(rng.lognormal(math.log(median_words), 0.6, n)), 3, 200).astype(int)
    return [" ".join(rng.choice(WORDS, c)) for c in counts]


def dataset(name: str, train: list[str], test: list[str]):
    from workers.datasets import TextDataset
    from workers.hashing import content_hash

    return TextDataset(name=name, train_texts=train, train_labels=np.zeros(len(train), np.int64),
                       test_texts=test, test_labels=np.zeros(len(test), np.int64),
                       label_names=["a", "b"], fingerprint=content_hash(name, *train, *test))


def job_of(spec, data):
    from workers.embedders import resolve_model
    from workers.embedding import EmbeddingJob
    from workers.store import embedding_key

    identity = resolve_model(spec).identity
    return EmbeddingJob(data.name, spec, embedding_key(identity, data.fingerprint), identity,
                        data.fingerprint)


def read_vectors(store_root: Path, job, precision: str) -> tuple[np.ndarray, dict]:
    """The train split the stage wrote, and its metadata (precision, device...)."""
    from workers.store import EmbeddingStore

    table = EmbeddingStore(store_root).read(job.dataset_name, job.embedder.name,
                                            job.store_key(precision), "train")
    return np.asarray(table.embeddings, dtype=np.float32), table.metadata


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    """Max |a - b| and the lowest row cosine (rows L2-normalised by both paths)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"vectors of shapes {a.shape} and {b.shape}")
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cosine.min()),
            "rows": int(a.shape[0]), "nonfinite_rows": [int((~np.isfinite(v).all(1)).sum())
                                                        for v in (a, b)]}


def peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def timed(fn):
    sync()
    began = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - began


def card_peak() -> tuple[str | None, float | None]:
    import torch

    if not torch.cuda.is_available():
        return None, None
    name = torch.cuda.get_device_name(0)
    return name, next((peak for key, peak in PEAK_BF16.items() if key in name.upper()), None)


def threads() -> int:
    import torch

    return torch.get_num_threads()


# ------------------------------------------------------------------------- part 1: MiniLM


def part_minilm(check: Check, record: dict) -> None:
    import torch
    from rich.console import Console
    from sentence_transformers import SentenceTransformer

    from orchestrator.config import ResourcesConfig
    from orchestrator.console import Reporter
    from orchestrator.embedding_stage import embedding_stage
    from workers.embedders import resolve_model
    from workers.embedding import EmbeddingActor
    from workers.specs import EmbedderSpec

    shape = check.shape
    batch = shape["minilm_batch"]
    train = texts(shape["minilm_texts"], seed=1, median_words=shape["words"])
    test = texts(max(16, len(train) // 50), seed=2, median_words=shape["words"])
    data = dataset("minilm-check", train, test)
    spec = EmbedderSpec(name="minilm", model="all-MiniLM-L6-v2", batch_size=batch)  # precision auto
    job = job_of(spec, data)
    where = device()
    actor = EmbeddingActor(spec, threads=0 if where == "cuda" else threads())
    _, load_s = timed(lambda: actor.embedder)
    precision = actor.precision
    record.update(device=where, precision=precision, texts=len(train) + len(test),
                  batch_size=batch, load_seconds=round(load_s, 2))
    check.log(f"minilm: loaded on {where} in {precision} ({load_s:.1f} s); "
              f"{len(train) + len(test)} texts")
    plain = SentenceTransformer(resolve_model(spec).location, device=where,
                                model_kwargs={"dtype": getattr(torch, precision)})

    def plain_run() -> np.ndarray:
        parts = [plain.encode(split, batch_size=batch, convert_to_tensor=True,
                              normalize_embeddings=True, show_progress_bar=False)
                 for split in (train, test)]
        return parts[0].float().cpu().numpy()

    runs = iter(range(10**6))

    def stage_run() -> np.ndarray:
        root = check.work / f"minilm-store-{next(runs)}"
        actor.embed(job, data, str(root), quiet=True)
        return read_vectors(root, job, precision)[0]

    plain_vectors, _ = timed(plain_run)  # warm: allocator, kernels, shapes
    stage_vectors, _ = timed(stage_run)
    plain_s, stage_s = [], []
    for i in range(shape["minilm_pairs"]):
        order = (plain_run, stage_run) if i % 2 == 0 else (stage_run, plain_run)
        for fn in order:
            _, seconds = timed(fn)
            (plain_s if fn is plain_run else stage_s).append(seconds)
    n = len(train) + len(test)
    record.update(
        plain_texts_per_s=round(n / min(plain_s), 1), stage_texts_per_s=round(n / min(stage_s), 1),
        ratio=round(min(plain_s) / min(stage_s), 3), ratio_target=0.95,
        plain_seconds=[round(s, 3) for s in plain_s], stage_seconds=[round(s, 3) for s in stage_s],
        vectors=compare(stage_vectors, plain_vectors), torch_threads=threads())
    check.log(f"minilm: plain {record['plain_texts_per_s']:,.0f} texts/s, stage (in process) "
              f"{record['stage_texts_per_s']:,.0f} texts/s, ratio {record['ratio']:.3f}, "
              f"max |diff| {record['vectors']['max_abs_diff']:.2e}")
    actor = plain = None  # frees the GPU for the stage's actor
    free_gpu()
    if not shape["minilm_through_ray"]:
        record["ray_stage"] = {"skipped": "--small: part 4 runs this embedder through Ray"}
        return

    # the stage itself: an EmbeddingActor on Ray (the GPU when Ray has one)
    ray_data = dataset("minilm-ray", train, test)
    ray_job = job_of(spec, ray_data)
    store = check.work / "minilm-ray-store"
    from workers.store import EmbeddingStore

    result, wall = timed(lambda: embedding_stage(
        [ray_job], {ray_data.name: ray_data}, EmbeddingStore(store),
        ResourcesConfig(cpus_per_embedding=max(1, threads())), Reporter(Console(quiet=True))))
    if result.errors:
        raise RuntimeError(f"the stage through Ray failed: {result.errors}")
    info = result.info[ray_job.key]
    record["ray_stage"] = {
        "wall_seconds": round(wall, 2), "device": info["device"], "precision": info["precision"],
        "actor_texts_per_s": round(info["texts_per_s"], 1),
        "actor_load_seconds": round(info["load_seconds"], 2),
        "vectors": compare(result.data[ray_job.key].train_x, plain_vectors)}
    check.log(f"minilm: the stage through Ray: {wall:.1f} s wall, actor on {info['device']} "
              f"({info['precision']}) {info['texts_per_s']:,.0f} texts/s")


# ------------------------------------------------------------------- part 2: 7B decoder


def plain_decoder_loop(model, tokenizer, batch_texts: list[str], prompt: str, batch: int,
                       where: str, max_length: int) -> tuple[np.ndarray, int, int]:
    """A plain PyTorch loop: texts sorted by characters (longest first), per batch tokenize
    (left padding), forward, the last token's hidden state, L2-normalise, copy back. Returns
    the vectors in input order, real and padded tokens."""
    import torch

    order = np.argsort([-len(t) for t in batch_texts], kind="stable")
    out = np.empty((len(batch_texts), model.config.hidden_size), np.float32)
    real = padded = 0
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            enc = tokenizer([prompt + batch_texts[i] for i in rows], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            real += int(enc["attention_mask"].sum())
            padded += int(enc["attention_mask"].numel())
            enc = {k: v.to(where, non_blocking=True) for k, v in enc.items()
                   if k in ("input_ids", "attention_mask")}  # a decoder takes no token types
            hidden = model(**enc).last_hidden_state[:, -1]
            out[rows] = torch.nn.functional.normalize(hidden.float(), dim=1).cpu().numpy()
    return out, real, padded


def linear_params(model) -> int:
    import torch

    return sum(m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
               for m in model.modules() if isinstance(m, torch.nn.Linear))


def part_decoder(check: Check, record: dict) -> None:
    import torch
    from transformers import AutoTokenizer

    from tests.tiny_models import (
        INSTRUCTION,
        build_decoder_folder,
        minilm_tokenizer,
        qwen2_config,
    )
    from workers.embedders import resolve_model
    from workers.embedding import EmbeddingActor
    from workers.specs import EmbedderSpec

    shape = check.shape
    where = device()
    tokenizer = minilm_tokenizer()
    config = qwen2_config(tokenizer, **shape["decoder"])
    folder = check.work / "qwen2"
    dtype = torch.bfloat16 if where == "cuda" else None
    _, build_s = timed(lambda: build_decoder_folder(folder, config, tokenizer, device=where, dtype=dtype))
    free_gpu()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    record.update(device=where, shape={k: getattr(config, k) for k in (
        "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
        "num_key_value_heads", "vocab_size")},
        folder_gib=round(size / 2**30, 2), build_and_save_seconds=round(build_s, 1))
    check.log(f"decoder: built and saved {size / 2**30:.2f} GiB in {build_s:.1f} s")
    batch = shape["decoder_batch"]
    spec = EmbedderSpec(name="qwen2-7b", model=str(folder), pooling="lasttoken", padding_side="left",
                        instruction=INSTRUCTION, max_seq_length=512, batch_size=batch)
    _, resolve_s = timed(lambda: resolve_model(spec))  # hashes the folder (memoised after)
    words = 1.4 * shape["words"]
    train = texts(shape["decoder_texts"], seed=3, median_words=words)
    test = texts(max(8, len(train) // 50), seed=4, median_words=words)
    data = dataset("decoder-check", train, test)
    job = job_of(spec, data)
    actor = EmbeddingActor(spec, threads=0 if where == "cuda" else threads())
    _, load_s = timed(lambda: actor.embedder)
    model = actor.embedder.model[0].model  # the Qwen2Model the stage runs: the same weights
    plain_tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    params = linear_params(model)
    name, peak = card_peak()
    record.update(precision_auto=actor.precision, model_dtype=str(next(model.parameters()).dtype),
                  attention=getattr(model.config, "_attn_implementation", None),
                  resolve_seconds=round(resolve_s, 2), load_seconds=round(load_s, 2),
                  linear_params=params, batch_size=batch, texts=len(train) + len(test),
                  card=name, peak_flops=peak)
    check.log(f"decoder: resolved (hashed) in {resolve_s:.1f} s, loaded in {load_s:.1f} s, "
              f"auto -> {actor.precision}, {params / 1e9:.2f} B linear parameters")
    runs = iter(range(10**6))

    def stage_run():
        root = check.work / f"decoder-store-{next(runs)}"
        actor.embed(job, data, str(root), quiet=True)
        return read_vectors(root, job, actor.precision)[0]

    def plain_run():
        vectors, real, padded = plain_decoder_loop(model, plain_tokenizer, train, INSTRUCTION,
                                                   batch, where, 512)
        _, test_real, test_padded = plain_decoder_loop(model, plain_tokenizer, test, INSTRUCTION,
                                                       batch, where, 512)
        return vectors, real + test_real, padded + test_padded

    results = {}
    for attempt in ("cold", "warm"):  # the first pass meets every batch shape for the first time
        for label, fn in (("stage", stage_run), ("plain", plain_run)):
            peak_reset()
            out, seconds = timed(fn)
            results[(label, attempt)] = (out, seconds, peak_gib())
            check.log(f"decoder: {label} {attempt} {seconds:.1f} s")
    stage_vectors = results[("stage", "warm")][0]
    plain_vectors, total_real, padded = results[("plain", "warm")][0]  # the same texts: the
    # same real tokens in both paths (the stage pads differently: padding is not counted)
    n = len(train) + len(test)
    for label in ("stage", "plain"):
        _, cold_s, _ = results[(label, "cold")]
        _, warm_s, memory = results[(label, "warm")]
        flops = 2 * params * total_real / warm_s
        record[label] = {"texts_per_s": round(n / warm_s, 1), "seconds_warm": round(warm_s, 2),
                         "seconds_cold": round(cold_s, 2), "tflops": round(flops / 1e12, 1),
                         "mfu": None if peak is None else round(flops / peak, 3),
                         "peak_memory_gib": memory}
    record.update(real_tokens=total_real, plain_pad_fraction=round(1 - total_real / padded, 3),
                  ratio=round(record["plain"]["seconds_warm"] / record["stage"]["seconds_warm"], 3),
                  mfu_target=0.55, vectors=compare(stage_vectors, plain_vectors),
                  anchor="shared/bench/gpu-anchor.md: 728 texts/s, 57 % MFU on an H200 "
                         "(pre-tokenised, 790 TFLOP/s peak assumed)")
    check.log(f"decoder: stage {record['stage']['texts_per_s']:,.1f} texts/s "
              f"({record['stage']['tflops']} TFLOP/s, MFU {record['stage']['mfu']}), plain "
              f"{record['plain']['texts_per_s']:,.1f} texts/s (MFU {record['plain']['mfu']}), "
              f"max |diff| {record['vectors']['max_abs_diff']:.2e}")
    actor = model = None
    free_gpu()


# --------------------------------------------------------------------- part 3: strategies


def synthetic_pool(n: int, d: int, c: int, labelled_rows: int, seed: int = 0):
    """L2-normalised Gaussian mixture rows, their labels, a labelled mask and a linear head
    (the class centres, scaled) whose probabilities are informative but not certain."""
    from strategies import LinearHead

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d), dtype=np.float32)
    labels = rng.integers(0, c, n)
    x = np.empty((n, d), np.float32)
    for start in range(0, n, 65536):
        stop = min(start + 65536, n)
        block = 0.6 * centres[labels[start:stop]] + rng.standard_normal((stop - start, d), dtype=np.float32)
        x[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    labelled = np.zeros(n, bool)
    labelled[rng.choice(n, labelled_rows, replace=False)] = True
    weights = (centres / np.linalg.norm(centres, axis=1, keepdims=True) * 8.0).astype(np.float32)
    return x, labels, labelled, LinearHead(weights=weights, bias=np.zeros(c, np.float32))


def part_strategies(check: Check, record: dict) -> None:
    from threadpoolctl import threadpool_limits

    from strategies import QUERY_STRATEGIES, QueryContext, kernels

    n, d, c = check.shape["pool"]
    query = check.shape["query"]
    x, labels, labelled, head = synthetic_pool(n, d, c, check.shape["labelled"])
    gpu = device() == "cuda"
    record.update(pool=[n, d, c], labelled=int(labelled.sum()), query=query,
                  device_side="cuda" if gpu else "torch kernels on the CPU (no GPU: --cpu)",
                  tolerance="none documented: selections are compared exactly, overlap reported",
                  blas_threads="1, as inside a trajectory (threadpool_limits)", results={})
    original = kernels.kernel_device
    asked: list[str | None] = []  # what each kernel_device call gave (None: numpy)

    def watched(context_device):
        found = original(context_device) if gpu else (
            "cpu" if str(context_device).startswith("cuda") else None)
        asked.append(found)
        return found

    def select(strategy, side: str, rows=None):
        rows = slice(None) if rows is None else rows
        context = QueryContext.for_strategy(strategy, x[rows], labelled[rows], c,
                                            labels=labels[rows], head=head, device=side)
        asked.clear()
        return timed(lambda: strategy.select(context, min(query, int((~context.labelled).sum())),
                                             np.random.default_rng(0)))

    kernels.kernel_device = watched
    try:
        with threadpool_limits(limits=1):  # the trajectory loop's setting: the CPU path trials run
            for name in QUERY_STRATEGIES.names():
                if check.elapsed() > check.args.budget_s:
                    record["results"][name] = {"skipped": "time budget"}
                    continue
                strategy = QUERY_STRATEGIES.create(name)
                warm = np.arange(min(2000, n))  # first-call costs (imports, CUDA kernels) first
                select(strategy, "cpu", warm)
                cpu, cpu_s = select(strategy, "cpu")
                consults = bool(asked)
                one = {"cpu_seconds": round(cpu_s, 3), "uses_device": consults}
                if consults:
                    select(strategy, "cuda", warm)
                    dev, dev_s = select(strategy, "cuda")
                    differs = np.flatnonzero(cpu != dev)
                    one.update(same=bool(np.array_equal(cpu, dev)), device_seconds=round(dev_s, 3),
                               overlap=round(len(set(cpu.tolist()) & set(dev.tolist())) / query, 3),
                               first_difference=int(differs[0]) if differs.size else None,
                               speed_up=round(cpu_s / dev_s, 2) if dev_s > 0 else None,
                               device_ran=sorted({str(a) for a in asked}))
                else:  # it never asks where kernels run: the same code on either side
                    one.update(same=None, note="never consults kernel_device: not rerun")
                record["results"][name] = one
                check.log(f"strategies: {name:16s} cpu {cpu_s:7.3f} s"
                          + (f", device {one['device_seconds']:7.3f} s, same {one['same']}, "
                             f"kernels on {one['device_ran']}" if consults else ", no device kernels"))
    finally:
        kernels.kernel_device = original


# --------------------------------------------------------------------------- part 4: grid


def write_corpus(path: Path, n: int, seed: int) -> Path:
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    filler = WORDS[:16]  # the function words
    labels = rng.integers(0, len(names), n)
    rows = []
    for label in labels:
        words = (list(rng.choice(TOPICS[names[label]].split(), 4))
                 + list(rng.choice(TOPICS[names[(label + 1) % 3]].split(), 2))
                 + list(rng.choice(filler, 5)))
        rng.shuffle(words)
        rows.append(" ".join(words))
    pd.DataFrame({"text": rows, "label": [names[i] for i in labels]}).to_parquet(path)
    return path


def part_grid(check: Check, record: dict) -> None:
    import ray
    from rich.console import Console

    from orchestrator.config import parse_config
    from orchestrator.console import Reporter
    from orchestrator.grid import prepare_plan
    from orchestrator.runner import run_grid
    from orchestrator.tracking import open_tracker
    from workers.store import EmbeddingStore

    root = check.work / "grid"
    root.mkdir()
    train_rows, test_rows = check.shape["grid_rows"]
    train = write_corpus(root / "train.parquet", train_rows, seed=1)
    write_corpus(root / "test.parquet", test_rows, seed=2)
    gpu = device() == "cuda"
    config = parse_config({
        "name": "gpu-check",
        "datasets": [{"name": "topics", "source": {"type": "file", "train": str(train),
                                                   "test": str(root / "test.parquet")}}],
        "embedders": [{"name": "minilm", "model": "all-MiniLM-L6-v2", "precision": "auto"}],
        "protocol": {"initial_pool_size": 6, "query_size": 6, "cycles": check.shape["grid_cycles"]},
        "strategies": [{"name": "random"}, {"name": "margin"}, {"name": "coreset"}, {"name": "badge"}],
        "seeds": [0],
        "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}"},
        "store": {"path": str(root / "embeddings"), "checkpoints": str(root / "checkpoints")},
        "resources": {"strategy_device": "cuda", "cpus_per_embedding": 1, "cpus_per_trajectory": 1,
                      "max_concurrency": check.shape["grid_actors"]},
    })
    plan = prepare_plan(config)
    tracker = open_tracker(config.tracking.uri, config.experiment_name)
    console = Console(record=True, width=160, file=open(os.devnull, "w"))  # noqa: SIM115
    summary, wall = timed(lambda: run_grid(plan, tracker, Reporter(console)))
    record.update(trials=len(plan.trials), finished=summary.finished, wall_seconds=round(wall, 1),
                  failed=[f"{t.strategy.name}: {e[:300]}" for t, e in summary.failed],
                  warnings=list(plan.warnings), strategy_device="cuda")
    runs = tracker.client.search_runs([tracker.experiment_id],
                                      filter_string="tags.`albench.kind` = 'embedding'")
    if len(runs) != 1:
        raise RuntimeError(f"{len(runs)} embedding-stage runs in MLflow, expected 1")
    run = runs[0]
    job = plan.jobs[0]
    cell = f"{job.dataset_name}/{job.embedder.name}"
    precision = run.data.params.get(f"{cell}/precision")
    record["mlflow_embedding_run"] = {
        "run_id": run.info.run_id, "status": run.info.status, "name": run.info.run_name,
        "device": run.data.params.get(f"{cell}/device"), "precision": precision,
        "texts_per_s": run.data.metrics.get(f"{cell}/texts_per_s"),
        "load_seconds": run.data.metrics.get(f"{cell}/load_seconds")}
    meta = EmbeddingStore(config.store.path).read(job.dataset_name, job.embedder.name,
                                                  job.store_key(precision), "train").metadata
    record["store_entry"] = {"precision": meta.get("precision"), "device": meta.get("device"),
                             "dim": meta.get("dim"), "rows": meta.get("rows"),
                             "store_key": job.store_key(precision), "trial_key_part": job.key}

    def probe():
        import torch

        return {"cuda_available": torch.cuda.is_available(),
                "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}

    record["trajectory_worker_sees"] = ray.get(ray.remote(num_cpus=1)(probe).remote())
    record["expected_precision"] = "bfloat16" if gpu else "float32"
    check.log(f"grid: {summary.finished}/{len(plan.trials)} finished in {wall:.1f} s, store entry "
              f"{meta.get('precision')} on {meta.get('device')}, MLflow run {run.info.status}")


# ------------------------------------------------------------------------------- summary


def summary(result: dict) -> str:
    meta, parts = result["meta"], result["parts"]
    lines = ["# albench GPU check", "",
             (f"{meta.get('started', '?')}: {meta.get('card') or 'no GPU'} ({meta.get('mode')}), "
             f"torch {meta.get('torch')}, CUDA {meta.get('cuda')}, {meta.get('cpus')} CPUs; "
             f"{meta.get('elapsed_s')} s in all (budget {meta.get('budget_s')} s)."), ""]

    def head(name: str, title: str) -> dict | None:
        part = parts.get(name)
        lines.append(f"## {title}")
        if part is None:
            lines.append("not run")
        elif part["status"] != "ok":
            lines.append(f"**{part['status']}**: {part.get('error')}")
        return part

    part = head("minilm", "1. MiniLM: the stage against SentenceTransformer.encode")
    if part and part["status"] == "ok":
        ray_stage = part.get("ray_stage", {})
        lines.append(f"{part['texts']} texts on {part['device']} in {part['precision']}, batch "
                     f"{part['batch_size']}: plain {part['plain_texts_per_s']:,} texts/s, stage "
                     f"{part['stage_texts_per_s']:,} texts/s, ratio **{part['ratio']}** (target >= "
                     f"0.95); max |diff| {part['vectors']['max_abs_diff']:.2e} (min cosine "
                     f"{part['vectors']['min_cosine']:.6f}).")
        if "skipped" in ray_stage:
            lines.append(f"Through Ray: skipped ({ray_stage['skipped']}).")
        elif ray_stage:
            lines.append(f"Through Ray: {ray_stage['wall_seconds']} s wall (actor start, load "
                         f"{ray_stage['actor_load_seconds']} s, encode, write, read back), the actor "
                         f"on {ray_stage['device']} at {ray_stage['actor_texts_per_s']:,} texts/s; "
                         f"max |diff| against plain {ray_stage['vectors']['max_abs_diff']:.2e}.")
    lines.append("")
    part = head("decoder", "2. Qwen2-7B-shaped decoder: the stage against a plain PyTorch loop")
    if part and part["status"] == "ok":
        lines += [(f"{part['shape']}, {part['linear_params'] / 1e9:.2f} B linear parameters, "
                  f"{part['folder_gib']} GiB folder (built and saved in {part['build_and_save_seconds']} "
                  f"s, hashed in {part['resolve_seconds']} s, loaded in {part['load_seconds']} s); "
                  f"`auto` -> **{part['precision_auto']}** ({part['model_dtype']}, {part['attention']}); "
                  f"{part['texts']} texts, batch {part['batch_size']}, {part['real_tokens']} real tokens."),
                  "", "| path | texts/s | TFLOP/s | MFU | peak GiB | warm s | cold s |",
                  "|---|---|---|---|---|---|---|"]
        for label in ("stage", "plain"):
            r = part[label]
            lines.append(f"| {label} | {r['texts_per_s']:,} | {r['tflops']} | {r['mfu']} | "
                         f"{r['peak_memory_gib']} | {r['seconds_warm']} | {r['seconds_cold']} |")
        lines += ["", (f"stage / plain {part['ratio']}; MFU target {part['mfu_target']} (peak "
                  f"{part['peak_flops']}); max |diff| {part['vectors']['max_abs_diff']:.2e} (min "
                  f"cosine {part['vectors']['min_cosine']:.6f}). Anchor: {part['anchor']}.")]
    lines.append("")
    part = head("strategies", "3. Strategies: strategy_device cuda against cpu")
    if part and part.get("results"):
        lines += [(f"pool {part['pool']}, {part['labelled']} labelled, batch {part['query']}; "
                   f"device side: {part['device_side']}; BLAS threads {part['blas_threads']}; "
                   f"tolerance: {part['tolerance']}."), "",
                  "| strategy | device kernels | same | overlap | cpu s | device s | speed-up |",
                  "|---|---|---|---|---|---|---|"]
        for name, r in part["results"].items():
            if "skipped" in r:
                lines.append(f"| {name} | skipped: {r['skipped']} | | | | | |")
            elif not r["uses_device"]:
                lines.append(f"| {name} | none (not rerun) | | | {r['cpu_seconds']} | | |")
            else:
                lines.append(f"| {name} | {', '.join(r['device_ran'])} | {r['same']} | "
                             f"{r['overlap']} | {r['cpu_seconds']} | {r['device_seconds']} | "
                             f"{r['speed_up']} |")
    lines.append("")
    part = head("grid", "4. A tiny grid end to end, precision auto")
    if part and part["status"] == "ok":
        run, entry = part["mlflow_embedding_run"], part["store_entry"]
        lines += [(f"{part['finished']}/{part['trials']} trials finished in {part['wall_seconds']} s "
                  f"(failed: {part['failed'] or 'none'}); store entry {entry['precision']} on "
                  f"{entry['device']} (expected {part['expected_precision']}); MLflow embedding run "
                  f"{run['status']}: {run['device']}, {run['precision']}, "
                  f"{run['texts_per_s'] or 0:,.0f} texts/s; a CPU-only Ray actor sees {part['trajectory_worker_sees']}.")]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="hide any GPU: the CPU paths")
    parser.add_argument("--small", action="store_true", help="tiny shapes (the CI test)")
    parser.add_argument("--out", help="folder for gpu-check.json and gpu-check.md "
                        "(default: bench/gpu-check, or bench/gpu-check-cpu with --cpu)")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="parts that would not fit in what is left are skipped")
    parser.add_argument("--parts", default="minilm,decoder,strategies,grid")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the temporary folder (models, stores, the grid's MLflow database)")
    args = parser.parse_args(argv)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch and Ray look
    args.out = args.out or str(ROOT / "bench" / ("gpu-check-cpu" if args.cpu else "gpu-check"))
    check = Check(args)
    check.log(f"albench GPU check ({'cpu' if args.cpu else 'gpu'}, "
              f"{'small' if args.small else 'full'}), work in {check.work}, out {check.out}")
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products exact on both sides
    name, peak = card_peak()
    check.result["meta"].update(
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z"), mode=("cpu" if args.cpu else "gpu")
        + (", small" if args.small else ""), card=name, peak_bf16_flops=peak,
        torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
        cpus=os.cpu_count(), budget_s=args.budget_s, host=platform.node(),
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    if not args.cpu and name is None:
        check.log("no CUDA device: the GPU parts run on the CPU (use --cpu --small to mean it)")
    import ray

    from orchestrator.ray_runtime import init_ray

    init_ray()  # first: before tokenizers start threads that Ray's forks would inherit
    check.result["meta"]["ray"] = {k: v for k, v in ray.cluster_resources().items()
                                   if k in ("CPU", "GPU")}
    check.log(f"Ray up: {check.result['meta']['ray']}")
    try:
        for part in args.parts.split(","):
            check.part(part, {"minilm": part_minilm, "decoder": part_decoder,
                              "strategies": part_strategies, "grid": part_grid}[part])
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        check.write()
        if not args.keep_work:  # the 7B folder alone is 14 GiB
            shutil.rmtree(check.work, ignore_errors=True)
    check.log(f"done: {check.out / 'gpu-check.json'}, {check.out / 'gpu-check.md'}")
    return 0 if all(p["status"] == "ok" for p in check.result["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
