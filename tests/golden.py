"""Golden vectors of the built-in embedders and the tiny decoder: the texts, how each embedder is
built, and the file holding the expected vectors. Regenerate (only after checking that a change
of vectors is intended) with ``python -m tests.golden``."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

GOLDEN = Path(__file__).parent / "data" / "golden_embeddings.npz"
TEXTS = [
    "The cat sat on the mat.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "I loved this film, the acting was wonderful.",
    "What is the capital of France?",
]
POOL = [
    "the movie was great and the acting was great", "a terrible movie with terrible acting",
    "the plot of the movie was slow", "great music and a great story",
    "stock markets fell as the bank raised rates", "the bank raised interest rates again",
    "markets rallied after the rates decision", "the cat sat on the mat",
    "a cat and a dog sat on the mat", "the dog chased the cat", "what is the capital city",
    "interest rates and stock markets", "paris is the capital of france",
] * 3
BUILTINS = {"tfidf-svd": {"dim": 8}, "glove-6b-50d": {}, "all-MiniLM-L6-v2": {}}


def embed_all(tiny_decoder_dir: Path) -> dict[str, np.ndarray]:
    from tests.tiny_models import INSTRUCTION
    from workers.embedders import load_embedder
    from workers.specs import EmbedderSpec

    out = {}
    for name, extra in BUILTINS.items():
        embedder = load_embedder(EmbedderSpec(name="golden", model=name, **extra), "cpu")
        embedder.fit(POOL)
        out[name] = embedder.encode(TEXTS)
    decoder = load_embedder(EmbedderSpec(name="golden", model=str(tiny_decoder_dir),
                                         instruction=INSTRUCTION, max_seq_length=128), "cpu")
    out["tiny-decoder"] = decoder.encode(TEXTS)
    return out


if __name__ == "__main__":
    import tempfile

    import torch

    from tests.tiny_models import build_tiny_decoder

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        vectors = embed_all(build_tiny_decoder(Path(tmp)))
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **{k.replace("-", "_"): v for k, v in vectors.items()})
    print({k: v.shape for k, v in vectors.items()})
