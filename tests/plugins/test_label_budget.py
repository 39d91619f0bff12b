"""The plug-in report section ``label_budget``: finished trials per strategy."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
from albench_test_plugins.label_budget import LabelBudget


def test_counts_finished_trials_per_strategy():
    trials = pd.DataFrame({"strategy": ["margin", "margin", "random"],
                           "status": ["FINISHED", "FAILED", "FINISHED"]})
    section = LabelBudget.build(SimpleNamespace(data=SimpleNamespace(trials=trials)))
    assert section.stats == {"finished": {"margin": 1, "random": 1}}
    assert "margin: 1, random: 1" in section.body
