"""albench's embedding path against a plain sentence-transformers loop on the same texts.

    python bench/embedding.py [--texts 1000] [--threads 2] [--repeats 2]

For all-MiniLM-L6-v2 (the built-in) and a tiny decoder-only model built offline (2 layers, seeded
random weights, last-token pooling and an instruction), on this machine's device (CPU here):
  - ``plain``: ``SentenceTransformer.encode(texts, batch_size=64)``, the same folder, device,
    precision and prompt;
  - ``albench``: ``EmbeddingActor.embed`` (token-budget length-sorted batches padded to multiples
    of 16, shards written to a store and verified, manifest), the model already loaded;
  - ``stage``: the whole embedding stage through Ray (actor start, model load, write, read back),
    and its overhead beyond loading the model once.
Prints texts/s of each and the ratio albench / plain (target >= 0.95). Warm figures: each path
runs once on a few texts before it is timed; the best of ``--repeats`` is kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

WORDS = ["the", "cat", "sat", "on", "a", "mat", "stock", "markets", "fell", "after", "the", "central", "bank", "raised", "rates", "film", "acting", "was", "wonderful", "boring", "plot", "story", "music", "team", "won", "the", "match", "against", "rivals", "in", "the", "final", "minute", "while", "fans", "cheered", "loudly"]


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(4, 48)))) for _ in range(n)]


def best_rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from tests.tiny_models import INSTRUCTION, build_tiny_decoder
    from workers.datasets import TextDataset
    from workers.embedders import resolve_model
    from workers.embedding import EmbeddingActor, EmbeddingJob, pick_device
    from workers.hashing import content_hash
    from workers.specs import EmbedderSpec
    from workers.store import embedding_key

    torch.set_num_threads(args.threads)
    device = pick_device()
    work = Path(tempfile.mkdtemp(prefix="albench-bench-embed-"))
    tiny = build_tiny_decoder(work / "tiny")
    sample = texts(args.texts)
    labels = np.zeros(len(sample), dtype=np.int64)
    data = TextDataset(name="bench", train_texts=sample, train_labels=labels, test_texts=sample[:16],
                       test_labels=labels[:16], label_names=["a", "b"],
                       fingerprint=content_hash(*sample))
    specs = [EmbedderSpec(name="minilm", model="all-MiniLM-L6-v2", batch_size=64),
             EmbedderSpec(name="tiny-decoder", model=str(tiny), instruction=INSTRUCTION,
                          max_seq_length=128, batch_size=64)]
    print(f"device {device}, torch threads {args.threads}, {len(sample)} texts "
          f"(4-47 words), best of {args.repeats}")
    rows = []
    for spec in specs:
        resolved = resolve_model(spec)
        plain = SentenceTransformer(resolved.location, device=device)
        if spec.max_seq_length:
            plain.max_seq_length = spec.max_seq_length
        plain.encode(sample[:64], batch_size=64, prompt=spec.prompt)  # warm

        def plain_run(plain=plain, spec=spec):
            plain.encode(sample, batch_size=64, prompt=spec.prompt, convert_to_numpy=True,
                         normalize_embeddings=True)

        actor = EmbeddingActor(spec, threads=args.threads)
        job = EmbeddingJob("bench", spec, embedding_key(resolved.identity, data.fingerprint),
                           resolved.identity, data.fingerprint)
        runs = iter(range(10**6))

        def albench_run(actor=actor, job=job, name=spec.name, runs=runs):
            actor.embed(job, data, str(work / f"store-{name}-{next(runs)}"), quiet=True)

        albench_run()  # warm
        n = len(sample) + 16
        plain_rate = best_rate(plain_run, len(sample), args.repeats)
        albench_rate = best_rate(albench_run, n, args.repeats)
        rows.append((spec.name, plain_rate, albench_rate, actor.load_seconds))
        print(f"  {spec.name:13s} plain {plain_rate:8.1f} texts/s   albench {albench_rate:8.1f} "
              f"texts/s   ratio {albench_rate / plain_rate:5.3f}   (model load {actor.load_seconds:.2f} s)",
              flush=True)

    import ray
    from rich.console import Console

    from orchestrator.config import ResourcesConfig
    from orchestrator.console import Reporter
    from orchestrator.embedding_stage import embedding_stage
    from workers.store import EmbeddingStore

    ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
    try:
        for (name, plain_rate, _, load), spec in zip(rows, specs):
            resolved = resolve_model(spec)
            job = EmbeddingJob("bench", spec, embedding_key(resolved.identity, data.fingerprint),
                               resolved.identity, data.fingerprint)
            began = time.perf_counter()
            result = embedding_stage([job], {"bench": data}, EmbeddingStore(work / f"stage-{name}"),
                                     ResourcesConfig(cpus_per_embedding=args.threads),
                                     Reporter(Console(quiet=True)))
            wall = time.perf_counter() - began
            assert job.key in result.data, result.errors
            encode = (len(sample) + 16) / plain_rate
            print(f"  stage {name:13s} wall {wall:6.2f} s = plain encode {encode:5.2f} s + model load "
                  f"{load:4.2f} s + overhead {wall - encode - load:5.2f} s (Ray actor start, "
                  f"imports, write, read back)", flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
