"""The learner and the curve metrics, against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from workers.learner import LogisticRegressionLearner, accuracy, macro_f1, normalized_auc
from workers.specs import LearnerSpec


def test_normalized_auc_by_hand():
    assert normalized_auc(np.array([10, 20, 40]), np.array([0.5, 0.7, 0.7])) == pytest.approx(
        ((0.5 + 0.7) / 2 * 10 + 0.7 * 20) / 30
    )
    assert normalized_auc(np.array([10, 20]), np.array([1.0, 1.0])) == 1.0
    assert normalized_auc(np.array([10]), np.array([0.3])) == 0.3


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 5, 200))
    assert macro_f1(y_true, y_pred, 7) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert accuracy(y_true, y_pred) == pytest.approx(np.mean(y_true == y_pred))


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
