"""Learners: the classifier retrained on the labelled rows every cycle, one module per kind.

A kind is a ``Learner`` subclass and its spec, a ``workers.specs.LearnerKind`` subclass that
registers itself in ``LEARNERS`` (the ``LearnerSpec`` union is built from it), says what it
provides to strategies and builds the learner. Another package adds one through the
entry-point group ``albench.learners`` (its value: the spec class).
"""

from __future__ import annotations

from workers.learners.base import UNSEEN_CLASS_BIAS, Learner, PoolScaler, make_learner
from workers.specs import LEARNERS, LearnerKind

__all__ = ["LEARNERS", "UNSEEN_CLASS_BIAS", "Learner", "LearnerKind", "PoolScaler", "make_learner"]
