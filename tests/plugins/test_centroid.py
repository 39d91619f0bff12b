"""The plug-in learner ``nearest_centroid``: a head over all classes, no linear head offered."""

from __future__ import annotations

import numpy as np
from albench_test_plugins.centroid import NearestCentroidSpec

from strategies import Need
from workers.learners import make_learner


def test_fits_separable_classes_and_gives_unseen_ones_no_probability():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(c * 5, 1, size=(20, 4)) for c in range(3)]).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    head = make_learner(NearestCentroidSpec(), 4, x, seed=0).fit(x, y)
    proba = head.predict_proba(x)
    assert proba.shape == (60, 4) and np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y).mean() > 0.95
    assert np.all(proba[:, 3] == 0)  # class 3 has no labelled row


def test_it_provides_probabilities_not_a_linear_head():
    assert NearestCentroidSpec.provides == frozenset({Need.PROBABILITIES})
