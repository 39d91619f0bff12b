"""The plug-in initial pool ``every_kth`` passes the conformance suite, from a cold start."""

from __future__ import annotations

import numpy as np
from albench_test_plugins.every_kth import EveryKth

from strategies import INITIAL_POOLS, QueryContext
from tests.plugins.installed import registered
from tests.strategies.conformance import StrategyConformance


class TestEveryKth(StrategyConformance):
    strategy_name = "every_kth"
    registry = registered(INITIAL_POOLS, "every_kth", EveryKth)

    def test_cold_start_spreads_over_the_pool(self):
        x = np.zeros((70, 4), np.float32)
        context = QueryContext.for_strategy(EveryKth(), x, np.zeros(70, bool), 2)
        chosen = EveryKth(k=7).select(context, 10, np.random.default_rng(3))
        assert len(set(np.diff(np.sort(chosen)))) == 1  # one step: every 7th row
