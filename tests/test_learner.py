"""The learner and the curve metrics, against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from workers.learner import LogisticRegressionLearner
from workers.metrics import accuracy, macro_f1, normalized_auc
from workers.specs import LearnerSpec


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
    head = LogisticRegressionLearner(LearnerSpec(), n_classes + 1).fit(x, y)
    reference = LogisticRegression(C=1.0, max_iter=500, tol=1e-4).fit(x, y)
    probabilities = head.predict_proba(x)
    np.testing.assert_allclose(probabilities[:, :n_classes], reference.predict_proba(x), atol=1e-5)
    assert np.all(probabilities[:, n_classes] == 0)  # the unseen class gets no mass


def test_single_labelled_class_predicts_it_everywhere():
    x = np.ones((4, 3), np.float32)
    head = LogisticRegressionLearner(LearnerSpec(), 3).fit(x, np.array([2, 2, 2, 2]))
    assert (head.logits(x).argmax(axis=1) == 2).all()


def test_fit_is_deterministic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    a = LogisticRegressionLearner(LearnerSpec(), 4).fit(x, y)
    b = LogisticRegressionLearner(LearnerSpec(), 4).fit(x, y)
    np.testing.assert_array_equal(a.weights, b.weights)
