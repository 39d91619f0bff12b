"""Learners: the classifier retrained on the labelled rows every cycle, one module per kind.

A kind is a subclass of ``Learner`` that names the spec ``type`` it builds (``kind``); the
package imports its modules itself, so adding one takes that module, its spec in
``workers/specs.py`` (a member of the ``LearnerSpec`` union) and its test.
"""

from __future__ import annotations

import importlib
import pkgutil

from workers.learners.base import KINDS, UNSEEN_CLASS_BIAS, Learner, PoolScaler, make_learner

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["KINDS", "UNSEEN_CLASS_BIAS", "Learner", "PoolScaler", "make_learner"]
