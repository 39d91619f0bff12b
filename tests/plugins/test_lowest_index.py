"""The plug-in query strategy ``lowest_index`` passes the conformance suite of the built-ins."""

from __future__ import annotations

import numpy as np
from albench_test_plugins.lowest_index import LowestIndex

from strategies import QUERY_STRATEGIES
from tests.plugins.installed import registered
from tests.strategies.conformance import StrategyConformance, make_context, make_pool


class TestLowestIndex(StrategyConformance):
    strategy_name = "lowest_index"
    registry = registered(QUERY_STRATEGIES, "lowest_index", LowestIndex)

    def test_takes_the_lowest_unlabelled_rows_after_offset(self):
        x, labels, labelled = make_pool(n=50, n_labelled=5)
        context = make_context(LowestIndex(offset=2), x, labels, labelled, 4)
        chosen = LowestIndex(offset=2).select(context, 3, np.random.default_rng(0))
        assert chosen.tolist() == np.flatnonzero(~labelled)[2:5].tolist()
