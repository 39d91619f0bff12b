"""The plug-in embedder kind ``hashing`` and its named model ``hashing-64``."""

from __future__ import annotations

import numpy as np
from albench_test_plugins.hashing import HashingEmbedder, HashingKind


def test_same_words_same_vector_unit_norm():
    embedder = HashingEmbedder(64, normalize=True)
    x = embedder.encode(["The cat sat", "the CAT sat", "a dog ran"])
    assert x.shape == (3, 64) and x.dtype == np.float32
    assert np.array_equal(x[0], x[1]) and not np.array_equal(x[0], x[2])
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0)


def test_the_kind_names_its_model_and_package():
    info = HashingKind.models["hashing-64"]
    assert (info.kind, info.dim, info.package) == ("hashing", 64, "albench-test-plugins")
