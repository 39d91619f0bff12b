"""The report's statistics that decide what it may claim: interval coverage simulated at the unit
counts it uses, the power of its pairwise tables, one AUC, sections placed by name, typed exports."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from orchestrator.report import coverage, export, stats
from orchestrator.report.sections import SectionOrderError, order
from workers.metrics import normalized_auc


@pytest.mark.parametrize("units", [2, 3, 4, 9])
def test_t_interval_covers_at_the_report_unit_counts(units):
    found = coverage.coverage("t interval of a mean", units, reps=3000, seed=units)
    assert 0.93 <= found <= 0.97, found


@pytest.mark.parametrize(("problems", "datasets"), [(9, 3), (6, 2)])
def test_within_dataset_correlation_covers(problems, datasets):
    found = coverage.coverage("within-dataset correlation (Fisher z)", problems, groups=datasets, reps=1500,
                              seed=problems)
    assert 0.93 <= found <= 0.97, found


def test_the_percentile_bootstrap_the_report_left_undercovers_with_3_units():
    assert coverage.coverage("percentile bootstrap", 3, reps=1500) < 0.85  # why it is gone


def test_gain_interval_is_the_t_interval_over_seeds():
    rows = [{"dataset": "d", "embedder": "e", "initial_pool": "random", "seed": s, "strategy": name,
             "status": "FINISHED", "auc_accuracy": value}
            for s, (r, m) in enumerate([(0.60, 0.63), (0.61, 0.61), (0.62, 0.66)])
            for name, value in (("random", r), ("margin", m))]
    gain = stats.gain_over_random(pd.DataFrame(rows)).table.iloc[0]
    diff = np.array([0.03, 0.0, 0.04])
    expected = sps.t.interval(0.95, 2, loc=diff.mean(), scale=sps.sem(diff))
    assert (gain["ci_low"], gain["ci_high"]) == pytest.approx(expected)


def test_power_of_a_pairwise_table():
    smallest = sps.wilcoxon(np.arange(1.0, 10.0)).pvalue  # 9 problems, all one sign: exact test
    assert stats.min_wilcoxon_p(9) == pytest.approx(smallest)
    found = stats.power(9, 15)  # the default grid: 9 problems, 6 strategies
    assert found["min_adjusted_p"] == pytest.approx(15 * smallest) and not found["can_reach_alpha"]
    assert found["problems_needed"] == 10 and stats.power(10, 15)["can_reach_alpha"]
    assert "no pair can be separated" in stats.power_words(found)
    scores = pd.DataFrame({"a": np.arange(3.0) + 1, "b": np.arange(3.0), "c": np.arange(3.0) - 1})
    result = stats.compare(scores)  # 3 problems: a beats b on all three, yet no test can say so
    assert not result.power["can_reach_alpha"] and result.better_on["a"]["b"] == [3, 0, 0]
    assert any("no pair can be separated" in m for m in result.messages)


def test_one_auc_on_a_degenerate_curve():
    steps, values = [20, 20], [0.2, 0.4]  # no x-range: the mean of the values, in both places
    assert normalized_auc(np.array(steps), np.array(values)) == pytest.approx(0.3)
    assert stats.auc_family(steps, values)["auc"] == pytest.approx(0.3)
    rng = np.random.default_rng(0)
    x, y = np.cumsum(rng.integers(1, 30, size=11)), rng.uniform(size=11)
    family = stats.auc_family(x, y, early_cycles=4)
    assert family["auc"] == normalized_auc(x, y) and family["early_auc"] == normalized_auc(x[:4], y[:4])
    with pytest.raises(ValueError):
        normalized_auc(np.array([]), np.array([]))


def test_sections_are_placed_by_name():
    assert order({"b": "a", "a": None, "c": "b"}) == ["a", "b", "c"]
    with pytest.raises(SectionOrderError, match="both follow"):
        order({"a": None, "b": "a", "c": "a"})
    with pytest.raises(SectionOrderError, match="no section"):
        order({"a": None, "b": "nowhere"})


def test_exports_are_typed():
    frame = pd.DataFrame({"param.protocol.cycles": ["10", "10"], "param.learner.C": ["0.5", "None"],
                          "param.strategy.flag": ["True", "False"], "param.name": ["a", None],
                          "accuracy": [0.5, 0.6], "status": ["FINISHED", "FINISHED"]})
    typed = export.typed(frame, "results")
    assert typed["param.protocol.cycles"].dtype == "Int64" and typed["param.learner.C"].dtype == "Float64"
    assert typed["param.learner.C"].isna().tolist() == [False, True]
    assert typed["param.strategy.flag"].dtype == "boolean" and typed["param.name"].isna().tolist() == [False, True]
    assert "last_cycle.accuracy" in typed and "accuracy" not in typed  # said to be the last cycle's
    documented = export.schema({"results": typed})["results.parquet"]
    assert all(c["meaning"] for c in documented), documented
