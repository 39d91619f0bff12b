"""Pure active-learning algorithms: query strategies and initial-pool selectors.

No Ray, no MLflow, no file I/O. Importing this package registers every built-in strategy.
"""

from strategies import (  # noqa: F401  (registers the built-ins)
    alfamix,
    badge,
    balanced,
    coreset,
    dropquery,
    probcover,
    random,
    typiclust,
    uncertainty,
)
from strategies.base import (
    LinearHead,
    MissingInputError,
    Need,
    PoolExhaustedError,
    QueryContext,
    QueryStrategy,
    StrategyError,
)
from strategies.registry import INITIAL_POOLS, QUERY_STRATEGIES, Registry, UnknownNameError

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
    "UnknownNameError",
]
