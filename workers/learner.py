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
