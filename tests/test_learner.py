"""The learner and the curve metrics, against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from workers.learners import KINDS, make_learner
from workers.learners.logistic import LogisticRegressionLearner
from workers.metrics import accuracy, macro_f1, normalized_auc
from workers.specs import LogisticRegressionSpec, MLPSpec


def fixed(n_classes: int, x: np.ndarray, C: float = 1.0) -> LogisticRegressionLearner:
    return LogisticRegressionLearner(LogisticRegressionSpec(C=C), n_classes, x, seed=0)


def test_normalized_auc_by_hand():
    assert normalized_auc(np.array([10, 20, 40]), np.array([0.5, 0.7, 0.7])) == pytest.approx(
        ((0.5 + 0.7) / 2 * 10 + 0.7 * 20) / 30
    )
    assert normalized_auc(np.array([10, 20]), np.array([1.0, 1.0])) == 1.0
    assert normalized_auc(np.array([10]), np.array([0.3])) == 0.3


# Ours, not scikit-learn's: the same floats, bit for bit, at ~1/50 of the cost per AL cycle.
@pytest.mark.parametrize("n_classes", [2, 3, 77])
@pytest.mark.parametrize("case", ["mixed", "missing_true", "one_predicted", "missing_pred"])
def test_metrics_equal_scikit_learn_bit_for_bit(n_classes, case):
    rng = np.random.default_rng(n_classes)
    for n in (5, 60, 2000):
        for _ in range(20):
            y_true = rng.integers(0, n_classes if case != "missing_true" else max(1, n_classes // 2), n)
            y_pred = np.where(rng.random(n) < rng.random(), y_true, rng.integers(0, n_classes, n))
            if case == "one_predicted":
                y_pred = np.full(n, int(rng.integers(0, n_classes)))
            elif case == "missing_pred":
                y_pred = rng.integers(0, max(1, n_classes // 3), n)
            assert macro_f1(y_true, y_pred, n_classes) == f1_score(y_true, y_pred, average="macro")
            assert accuracy(y_true, y_pred) == accuracy_score(y_true, y_pred)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_head_reproduces_scikit_learn_probabilities(n_classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    y = rng.integers(0, n_classes, 120)
    head = fixed(n_classes + 1, x).fit(x, y)
    reference = LogisticRegression(C=1.0, max_iter=500, tol=1e-4).fit(x, y)
    probabilities = head.predict_proba(x)
    np.testing.assert_allclose(probabilities[:, :n_classes], reference.predict_proba(x), atol=1e-5)
    assert np.all(probabilities[:, n_classes] == 0)  # the unseen class gets no mass


def test_single_labelled_class_predicts_it_everywhere():
    x = np.ones((4, 3), np.float32)
    head = fixed(3, x).fit(x, np.array([2, 2, 2, 2]))
    assert (head.logits(x).argmax(axis=1) == 2).all()


def test_fit_is_deterministic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    a = fixed(4, x).fit(x, y)
    b = fixed(4, x).fit(x, y)
    np.testing.assert_array_equal(a.weights, b.weights)


SPECS = {"tuned logistic": LogisticRegressionSpec(), "standardised logistic": LogisticRegressionSpec(standardize=True),
         "mlp": MLPSpec(hidden=32, max_iter=100)}


def _pool(n=400, d=10, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.5, size=(classes, d))
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_every_learner_kind_keeps_the_contract(spec):
    """All C columns (an unseen class gets probability 0), rows summing to one, one labelled
    class predicted everywhere, deterministic for a seed, and better than chance."""
    assert set(KINDS) == {"logistic_regression", "mlp"}
    x, y = _pool()
    seen = y < 3  # class 3 unlabelled
    rows = np.flatnonzero(seen)[:120]
    learner = make_learner(spec, 4, x, seed=5)
    head = learner.fit(x[rows], y[rows])
    probabilities = head.predict_proba(x)
    assert head.logits(x).shape == probabilities.shape == (400, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert np.all(probabilities[:, 3] == 0)
    again = make_learner(spec, 4, x, seed=5).fit(x[rows], y[rows])
    np.testing.assert_array_equal(head.logits(x), again.logits(x))
    held = np.flatnonzero(seen)[200:]
    assert np.mean(head.logits(x[held]).argmax(axis=1) == y[held]) > 0.6
    single = learner.fit(x[:5], np.full(5, 2))
    assert (single.logits(x).argmax(axis=1) == 2).all()


def test_fixed_C_is_exactly_the_learner_of_result_version_1():
    x, y = _pool(seed=3)
    head = make_learner(LogisticRegressionSpec(C=1.0), 4, x, seed=0).fit(x[:80], y[:80])
    reference = LogisticRegression(C=1.0, max_iter=500, tol=1e-4).fit(x[:80], y[:80])
    np.testing.assert_array_equal(head.weights, reference.coef_.astype(np.float32))


def test_tuned_C_escapes_the_majority_class_and_uses_the_validation_split():
    """Few labels on L2-normalised embeddings: C = 1 regularises a class away; the tuned
    learner predicts all three. With a validation split, C is the one that scores best on it."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=0.5, size=(3, 384))
    y = rng.integers(0, 3, 600)
    x = (centres[y] + rng.normal(size=(600, 384))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.arange(12)
    assert np.unique(fixed(3, x).fit(x[rows], y[rows]).logits(x).argmax(axis=1)).size == 2
    tuned = make_learner(LogisticRegressionSpec(), 3, x, seed=0)
    assert np.unique(tuned.fit(x[rows], y[rows]).logits(x).argmax(axis=1)).size == 3
    validation = (x[300:400], y[300:400])
    chosen = tuned.choose_C(x[:60], y[:60], validation)
    scores = {C: np.mean(fixed(3, x, C).fit(x[:60], y[:60]).logits(validation[0]).argmax(axis=1) == validation[1])
              for C in LogisticRegressionSpec().C_grid}
    assert scores[chosen] == max(scores.values())


def test_a_resumed_tuned_learner_continues_as_the_uninterrupted_one():
    """Resuming from a checkpoint redoes the last C search on the rows it had then, also when
    the first cycles saw one class only (no search then), so the next heads are identical."""
    x, y = _pool(n=300, seed=6)
    order = list(np.argsort(y, kind="stable")[:4]) + list(np.random.default_rng(1).permutation(300)[:60])
    order = list(dict.fromkeys(int(i) for i in order))  # first 4 rows: one class
    sizes = [4 + 6 * c for c in range(9)]
    whole = make_learner(LogisticRegressionSpec(), 4, x, seed=0)
    heads = [whole.fit(x[np.sort(order[:n])], y[np.sort(order[:n])]) for n in sizes]
    for stop in (1, 3, 6):
        resumed = make_learner(LogisticRegressionSpec(), 4, x, seed=0)
        resumed.resume(x, y, order, sizes[:stop], None)
        for n, head in zip(sizes[stop:], heads[stop:], strict=True):
            again = resumed.fit(x[np.sort(order[:n])], y[np.sort(order[:n])])
            np.testing.assert_array_equal(again.weights, head.weights)
