"""The learner: multinomial logistic regression on frozen embeddings, retrained every cycle."""

from __future__ import annotations

import warnings

import numpy as np

from strategies import LinearHead
from workers.specs import LearnerSpec

UNSEEN_CLASS_BIAS = -1e4
"""Bias of classes with no labelled row yet: their probability is exactly 0."""


class LogisticRegressionLearner:
    """L-BFGS multinomial logistic regression (scikit-learn), deterministic on CPU.

    Returns a ``LinearHead`` over all ``n_classes``, so strategies always see C columns even
    when some classes have no labelled row yet.
    """

    def __init__(self, spec: LearnerSpec, n_classes: int) -> None:
        self.spec = spec
        self.n_classes = n_classes

    def fit(self, features: np.ndarray, labels: np.ndarray) -> LinearHead:
        dim = features.shape[1]
        weights = np.zeros((self.n_classes, dim), dtype=np.float32)
        bias = np.full(self.n_classes, UNSEEN_CLASS_BIAS, dtype=np.float32)
        seen = np.unique(labels)
        if seen.size == 1:  # one class labelled so far: it is predicted everywhere
            bias[seen[0]] = 0.0
            return LinearHead(weights, bias)
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(
            C=self.spec.C,
            max_iter=self.spec.max_iter,
            tol=self.spec.tol,
            class_weight=self.spec.class_weight,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features, labels)
        coef, intercept = model.coef_, model.intercept_
        if seen.size == 2:  # binary: sklearn keeps one row; the softmax equivalent is +-w/2
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        weights[model.classes_] = coef
        bias[model.classes_] = intercept
        return LinearHead(weights, bias)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes present in ``y_true`` or ``y_pred`` (as scikit-learn)."""
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes).astype(np.float64)
    predicted = np.bincount(y_pred, minlength=n_classes)
    actual = np.bincount(y_true, minlength=n_classes)
    present = (predicted + actual) > 0
    denominator = predicted + actual
    f1 = np.divide(2 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)
    return float(f1[present].mean())


def normalized_auc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)`` divided by the x-range, so it lies in [min y, max y]."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2 or x[-1] == x[0]:
        return float(y[-1])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))
