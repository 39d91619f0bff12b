"""An embedder kind: hashed bag of words (the hashing trick), with the named model hashing-64."""

from __future__ import annotations

import re
import zlib
from typing import ClassVar

import numpy as np

from workers.embedders.base import EmbedderKind, finish
from workers.embedders.builtins import BuiltinEmbedderInfo

_WORD = re.compile(r"[^\W_]+")


class HashingEmbedder:
    """Counts of each text's lowercase words, hashed (crc32) into ``dim`` buckets."""

    def __init__(self, dim: int, normalize: bool) -> None:
        self.dim, self.normalize = dim, normalize

    def fit(self, pool_texts: list[str]) -> None:
        return None

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return finish(out, self.normalize)


class HashingKind(EmbedderKind):
    """Words hashed into buckets: no model data, any ``dim``."""

    name = "hashing"
    models: ClassVar[dict[str, BuiltinEmbedderInfo]] = {"hashing-64": BuiltinEmbedderInfo(
        description="Hashed bag of words, 64 buckets (crc32 of each lowercase word).",
        package="albench-test-plugins", dim=64, kind="hashing")}

    def load(self, spec, resolved, device):
        return HashingEmbedder(resolved.dim, spec.normalize)
