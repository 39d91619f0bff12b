"""AlfaMix: conformance, and equality with a slow reference written from the paper's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strategies import QueryContext
from strategies.alfamix import AlfaMix, alpha_caps, first_flipping_cap
from tests.strategies.conformance import StrategyConformance, fitted_head
from tests.strategies.test_dropquery import reference_kmeans_representatives


class TestAlfaMix(StrategyConformance):
    strategy_name = "alfamix"


def reference_candidates(x, labelled, labels, head, n, alpha_cap=0.2, grow_cap=True):
    """The paper's closed-form alpha, one anchor at a time, in float64; the reference code's
    cap loop. Returns the candidate mask over the unlabelled rows."""
    unlabelled = np.flatnonzero(~labelled)
    z = x[unlabelled].astype(np.float64)
    w, b = head.weights.astype(np.float64), head.bias.astype(np.float64)
    logits = z @ w.T + b
    pred = np.argmax(logits, axis=1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = (p - np.eye(w.shape[0])[pred]) @ w  # d CE(softmax(w z + b), pred) / dz
    grad_norm = np.linalg.norm(grad, axis=1, keepdims=True)
    anchors = [x[labelled & (labels == c)].astype(np.float64).mean(axis=0)
               for c in range(w.shape[0]) if np.any(labelled & (labels == c))]
    candidate = np.zeros(unlabelled.size, bool)
    cap = 0.0
    while cap < 1.0 - 1e-9:
        cap += alpha_cap
        eps = cap / math.sqrt(x.shape[1])
        for anchor in anchors:
            diff = anchor - z
            alpha = eps * np.linalg.norm(diff, axis=1, keepdims=True) / grad_norm * grad / diff
            mixed = (1 - alpha) * z + alpha * anchor
            candidate |= np.argmax(mixed @ w.T + b, axis=1) != pred
        if candidate.sum() > n or not grow_cap:
            break
    return candidate


def reference_alfamix(x, labelled, labels, head, n, rng, alpha_cap=0.2, grow_cap=True, normalize=True):
    unlabelled = np.flatnonzero(~labelled)
    candidate = reference_candidates(x, labelled, labels, head, n, alpha_cap, grow_cap)
    features = x[unlabelled[candidate]]
    if normalize:
        features = features / np.linalg.norm(features, axis=1, keepdims=True)
    return reference_kmeans_representatives(
        features, unlabelled[candidate], unlabelled[~candidate], n, rng
    ), candidate


def _pool(n, d, n_classes, n_labelled, labelled_classes=None):
    """Overlapping Gaussian classes (centres at scale 1, unit noise), so that mixes flip."""
    rng = np.random.default_rng(n + d)
    centres = rng.normal(size=(n_classes, d))
    labels = rng.integers(0, n_classes, size=n)
    x = (centres[labels] + rng.normal(size=(n, d))).astype(np.float32)
    labelled = np.zeros(n, bool)
    eligible = np.flatnonzero(labels < (labelled_classes or n_classes))
    labelled[rng.choice(eligible, size=n_labelled, replace=False)] = True
    head = fitted_head(x, labels, labelled, n_classes)
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=n_classes,
                           labels=np.where(labelled, labels, -1), head=head)
    return x, labels, labelled, head, context


@pytest.mark.parametrize(
    "n, d, n_classes, n_labelled, batch, params, labelled_classes",
    [
        (300, 8, 3, 20, 10, {}, None),                        # 31 candidates at the first cap
        (800, 32, 10, 50, 20, {"alpha_cap": 0.3}, 7),         # 3 classes without an anchor
        (1500, 24, 20, 100, 60, {"normalize": False}, None),  # mini-batch k-means
        (600, 16, 4, 100, 40, {}, None),                      # more than B at the second cap
        (300, 8, 3, 20, 40, {"grow_cap": False}, None),       # 31 candidates, 9 at random
        (400, 16, 4, 200, 150, {"alpha_cap": 0.05}, None),    # all 20 caps, then at random
    ],
)
def test_matches_reference(n, d, n_classes, n_labelled, batch, params, labelled_classes):
    x, labels, labelled, head, context = _pool(n, d, n_classes, n_labelled, labelled_classes)
    fast = AlfaMix(**params).select(context, batch, np.random.default_rng(3))
    slow, candidate = reference_alfamix(x, labelled, labels, head, batch, np.random.default_rng(3), **params)
    assert candidate.any()
    np.testing.assert_array_equal(fast, slow)


def test_candidates_grow_with_the_cap():
    *_, context = _pool(1000, 32, 10, 60)
    rows = np.flatnonzero(~context.labelled)
    caps = alpha_caps(0.1, grow=True)
    assert len(caps) == 10 and caps[-1] == pytest.approx(1.0)
    first = first_flipping_cap(context, rows, caps)
    counts = [int(np.sum(first <= i)) for i in range(len(caps))]
    assert counts == sorted(counts) and 0 < counts[0] < counts[-1] < rows.size


def test_saturated_probabilities_still_have_a_direction():
    # Logit gaps of ~1000: float32 softmax is one-hot, the gradient of the loss is 0 in float32;
    # mixes towards the other class must still flip the rows between the two classes.
    x = np.array([[-1.0, 0.0], [0.2, 0.0], [1.0, 0.0], [0.9, 0.0]], np.float32) * 1000
    labelled = np.array([True, False, True, False])
    head = fitted_head(x, np.array([0, 0, 1, 1]), labelled, 2)
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=2,
                           labels=np.array([0, -1, 1, -1]), head=head)
    first = first_flipping_cap(context, np.array([1, 3]), [0.2, 1.0])
    assert first[0] < 2  # halfway between the anchors: flips
