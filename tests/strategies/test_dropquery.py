"""DropQuery: conformance, and equality with a slow reference written from the paper."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans

from strategies import QueryContext
from strategies.dropquery import DropQuery, dropout_disagreements, dropout_masks
from tests.strategies.conformance import StrategyConformance, fitted_head, make_pool


class TestDropQuery(StrategyConformance):
    strategy_name = "dropquery"


def reference_kmeans_representatives(features, candidates, others, n, rng):
    """k-means, then the member nearest each centre with loops; the fill-up at random.

    rng use, in order: k-means seed; a random key per candidate (ties of distance); a random
    key per representative (ties of cluster size); the fill-ups. Same as the fast version.
    """
    if len(candidates) <= n:
        picked = list(rng.permutation(candidates))
        picked += list(rng.choice(others, size=n - len(picked), replace=False))
        return np.array(picked, dtype=np.int64)
    seed = int(rng.integers(0, 2**31 - 1))
    if n <= 50:
        model = KMeans(n_clusters=n, n_init=1, random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=n, batch_size=5000, n_init=1, random_state=seed)
    model.fit(features)
    key = rng.permutation(len(candidates))
    winners, sizes = [], []
    for c in range(n):
        members = [i for i in range(len(candidates)) if model.labels_[i] == c]
        if not members:
            continue
        centre = model.cluster_centers_[c].astype(np.float64)
        dist = {i: float(np.sum((features[i].astype(np.float64) - centre) ** 2)) for i in members}
        # Distances within 1e-5 (relative) of the smallest tie: a two-member cluster's centre is
        # their midpoint, an exact tie that rounding must not decide.
        best = min(dist.values())
        tied = [i for i in members if dist[i] <= best * (1 + 1e-5)]
        winners.append(min(tied, key=lambda i: key[i]))
        sizes.append(len(members))
    size_key = rng.permutation(len(winners))
    order = sorted(range(len(winners)), key=lambda w: (-sizes[w], size_key[w]))
    picked = [candidates[winners[w]] for w in order]
    if len(picked) < n:
        rest = [c for c in candidates if c not in picked]
        picked += list(rng.choice(rest, size=n - len(picked), replace=False))
    return np.array(picked, dtype=np.int64)


def reference_dropquery(x, labelled, probabilities, head, n, rng, n_drops=3, drop_rate=0.75):
    """Dropout predictions row by row in float64; the same masks (one generator per run)."""
    unlabelled = np.flatnonzero(~labelled)
    runs = rng.spawn(n_drops)
    threshold = round(drop_rate * 2**16)  # uniform 16-bit draws at or above it are kept
    keep = [r.integers(0, 2**16, size=(unlabelled.size, x.shape[1]), dtype=np.uint16) >= threshold
            for r in runs]
    w, b = head.weights.astype(np.float64), head.bias.astype(np.float64)
    changes = np.zeros(unlabelled.size, dtype=int)
    smallest_margin = np.inf
    for j, row in enumerate(unlabelled):
        plain = np.argmax(probabilities[row])
        for m in range(n_drops):
            logits = w @ (x[row] * keep[m][j] / (1 - drop_rate)) + b
            top2 = np.sort(logits)[-2:]
            smallest_margin = min(smallest_margin, top2[1] - top2[0])
            changes[j] += np.argmax(logits) != plain
    candidate = changes > n_drops // 2
    picked = reference_kmeans_representatives(
        x[unlabelled[candidate]], unlabelled[candidate], unlabelled[~candidate], n, rng
    )
    return picked, smallest_margin


@pytest.mark.parametrize(
    "n, d, n_classes, n_labelled, batch, params",
    [
        (300, 8, 3, 20, 10, {}),
        (800, 32, 10, 50, 20, {"n_drops": 4, "drop_rate": 0.85}),  # even M: > 2 of 4
        (1500, 24, 20, 100, 60, {}),                  # mini-batch k-means
        (400, 16, 4, 200, 150, {"drop_rate": 0.5}),   # 6 candidates: random fill-up
    ],
)
def test_matches_reference(n, d, n_classes, n_labelled, batch, params):
    x, labels, labelled = make_pool(n=n, d=d, n_classes=n_classes, n_labelled=n_labelled, seed=n + d)
    head = fitted_head(x, labels, labelled, n_classes)
    probabilities = head.predict_proba(x).astype(np.float32)
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=n_classes,
                           probabilities=probabilities, head=head)
    fast = DropQuery(**params).select(context, batch, np.random.default_rng(3))
    slow, margin = reference_dropquery(
        x, labelled, probabilities, head, batch, np.random.default_rng(3), **params
    )
    assert margin > 1e-3, "a near-tie of logits: float32 and float64 may disagree; change the seed"
    np.testing.assert_array_equal(fast, slow)


def test_mask_rate_and_chunk_independence():
    keep = dropout_masks(np.random.default_rng(0), (1000, 100), 0.75)
    assert abs(keep.mean() - 0.25) < 0.01
    x, labels, labelled = make_pool(n=301, d=15, n_classes=5, n_labelled=40, seed=2)  # odd sizes
    head = fitted_head(x, labels, labelled, 5)
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=5,
                           probabilities=head.predict_proba(x), head=head)
    rows = np.flatnonzero(~labelled)
    whole = dropout_disagreements(context, rows, 3, 0.75, np.random.default_rng(1), chunk_rows=10**6)
    for chunk_rows in (1, 7, 64):
        chunked = dropout_disagreements(
            context, rows, 3, 0.75, np.random.default_rng(1), chunk_rows=chunk_rows
        )
        np.testing.assert_array_equal(chunked, whole)
