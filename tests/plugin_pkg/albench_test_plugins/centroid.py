"""A learner: nearest class centroid, probabilities a softmax of negative squared distances.

It has no linear head to give (``provides`` leaves ``Need.HEAD`` out), so strategies that need
one (dropquery, alfamix) are refused with it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy.special import softmax

from workers.learners import UNSEEN_CLASS_BIAS, Learner, LearnerKind


class CentroidHead:
    def __init__(self, centroids: np.ndarray, seen: np.ndarray, temperature: float) -> None:
        self.centroids, self.seen, self.temperature = centroids, seen, temperature

    def logits(self, features: np.ndarray) -> np.ndarray:
        distances = ((features[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)
        return np.where(self.seen, -distances / self.temperature, UNSEEN_CLASS_BIAS).astype(np.float32)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features), axis=1)


class NearestCentroidLearner(Learner):
    def fit(self, features, labels, validation=None):
        centroids = np.zeros((self.n_classes, features.shape[1]), dtype=np.float32)
        seen = np.zeros(self.n_classes, dtype=bool)
        for label in np.unique(labels):
            centroids[label] = features[labels == label].mean(axis=0)
            seen[label] = True
        return CentroidHead(centroids, seen, self.spec.temperature)


class NearestCentroidSpec(LearnerKind):
    """Nearest class centroid on the frozen embeddings (no parameters learned but the means)."""

    type: Literal["nearest_centroid"] = Field("nearest_centroid", description="The learner.")
    temperature: float = Field(0.1, gt=0, description="Softmax temperature of the distances.")

    def build(self, n_classes, pool, seed):
        return NearestCentroidLearner(self, n_classes, pool, seed)
