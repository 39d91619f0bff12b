"""The learner ``mlp``: a small MLP head (scikit-learn's ``MLPClassifier``: one ReLU layer, Adam,
L2), seeded by the trial, on pool-standardised features. Its head computes logits in numpy over
all C classes. Its spec (``MLPSpec``) and its learner are this module."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.special import softmax

from workers.learners.base import UNSEEN_CLASS_BIAS, Learner
from workers.specs import LearnerKind


class MLPHead:
    """``logits(x)`` and ``predict_proba(x)`` of a fitted MLP, over all ``n_classes``."""

    def __init__(self, layers, classes: np.ndarray, n_classes: int, scaler) -> None:
        self.layers = layers
        self.classes = classes
        self.n_classes = n_classes
        self.scaler = scaler

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = features if self.scaler is None else self.scaler(features)
        (w1, b1), (w2, b2) = self.layers
        out = np.maximum(x @ w1 + b1, 0) @ w2 + b2
        if self.classes.size == 2:  # one logistic unit: the softmax equivalent is +-z/2
            out = np.hstack([-out / 2, out / 2])
        logits = np.full((features.shape[0], self.n_classes), UNSEEN_CLASS_BIAS, dtype=np.float32)
        logits[:, self.classes] = out
        return logits

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features), axis=1)


class _Constant:
    """One class labelled so far: it is predicted everywhere."""

    def __init__(self, label: int, n_classes: int) -> None:
        self.label, self.n_classes = label, n_classes

    def logits(self, features: np.ndarray) -> np.ndarray:
        logits = np.full((features.shape[0], self.n_classes), UNSEEN_CLASS_BIAS, dtype=np.float32)
        logits[:, self.label] = 0.0
        return logits

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features), axis=1)


class MLPLearner(Learner):
    def fit(self, features, labels, validation=None):
        seen = np.unique(labels)
        if seen.size == 1:
            return _Constant(int(seen[0]), self.n_classes)
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        x = features if self.scaler is None else self.scaler(features)
        model = MLPClassifier(hidden_layer_sizes=(self.spec.hidden,), alpha=self.spec.alpha,
                              max_iter=self.spec.max_iter, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, labels)
        layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32))
                  for w, b in zip(model.coefs_, model.intercepts_, strict=True)]
        return MLPHead(layers, model.classes_, self.n_classes, self.scaler)


class MLPSpec(LearnerKind):
    """A small MLP head on the frozen embeddings (scikit-learn, CPU, seeded by the trial): a
    check that a finding is not an artefact of the linear head. Strategies that need a linear
    head (dropquery, alfamix) do not take it."""

    type: Literal["mlp"] = Field("mlp", description="The learner: one hidden ReLU layer.")
    hidden: int = Field(256, ge=2, le=8192, description="Hidden units.")
    alpha: float = Field(1e-3, ge=0, description="L2 penalty.")
    max_iter: int = Field(300, ge=10, description="Adam epochs at most.")
    standardize: bool = Field(True, description="Standardise features with the pool's statistics.")

    def build(self, n_classes: int, pool: np.ndarray, seed: int) -> Learner:
        return MLPLearner(self, n_classes, pool, seed)
