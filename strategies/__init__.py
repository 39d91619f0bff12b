"""Pure active-learning algorithms: query strategies and initial-pool selectors.

No Ray, no MLflow, no file I/O. Importing this package imports every module in it, so every
strategy a module registers (``strategies.registry``) is available: adding a strategy is
adding a module.
"""

import importlib
import pkgutil

from strategies.base import (
    LinearHead,
    MissingInputError,
    Need,
    PoolExhaustedError,
    QueryContext,
    QueryStrategy,
    StrategyError,
    StrategyParamError,
)
from strategies.registry import INITIAL_POOLS, QUERY_STRATEGIES, Registry, UnknownNameError

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module

__all__ = [
    "INITIAL_POOLS",
    "QUERY_STRATEGIES",
    "LinearHead",
    "MissingInputError",
    "Need",
    "PoolExhaustedError",
    "QueryContext",
    "QueryStrategy",
    "Registry",
    "StrategyError",
    "StrategyParamError",
    "UnknownNameError",
]
