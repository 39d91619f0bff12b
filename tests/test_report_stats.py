"""report.stats against scipy / scikit-posthocs on fixed data and constructed cases."""

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats as sps

from orchestrator.report import stats


def _trials(effect: float, n_problems: int = 8, seeds=(0, 1, 2)) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for p in range(n_problems):
        level = rng.uniform(0.5, 0.8)
        for s in seeds:
            noise = rng.normal(0, 0.01)
            for strategy, delta in (("random", 0.0), ("good", effect), ("same", 0.0)):
                rows.append({"dataset": f"d{p}", "embedder": "e", "initial_pool": "random", "seed": s,
                             "strategy": strategy, "status": "FINISHED",
                             "auc_accuracy": level + noise + delta + (rng.normal(0, 1e-3) if strategy == "same" else 0)})
    return pd.DataFrame(rows)


def test_better_by_design_wins_and_equal_ties():
    scores = stats.problem_scores(_trials(0.05))
    result = stats.compare(scores, tie_threshold=0.01)
    assert result.ranks["good"] == 1.0
    assert result.win_tie_loss["good"]["random"] == [8, 0, 0]
    assert result.win_tie_loss["same"]["random"][1] == 8  # below the practical threshold: tied
    assert result.friedman["p"] < 0.05


def test_against_scipy_and_scikit_posthocs():
    scores = stats.problem_scores(_trials(0.05))
    result = stats.compare(scores)
    expected = sps.friedmanchisquare(*(scores[c] for c in scores.columns))
    assert result.friedman["p"] == pytest.approx(expected.pvalue)
    ref = sp.posthoc_wilcoxon([scores[c].to_numpy() for c in scores.columns], p_adjust="holm")
    ref.index = ref.columns = list(scores.columns)
    assert result.pairwise_p["good"]["random"] == pytest.approx(ref.loc["good", "random"])
    raw = [0.01, 0.04, 0.03]  # Holm by hand: sorted 0.01*3, max(0.03*2, .03), max(0.04*1, .06)
    assert stats.holm(raw) == pytest.approx([0.03, 0.06, 0.06])


def test_gain_one_seed_and_missing_random_give_messages_not_nan():
    one = stats.gain_over_random(_trials(0.05, seeds=(0,)))
    assert one.table["gain"].notna().all() and any("one seed" in m for m in one.messages)
    t = _trials(0.05)
    none = stats.gain_over_random(t[t["strategy"] != "random"])
    assert none.table.empty and "no finished 'random'" in none.messages[0]
    gains = stats.gain_over_random(t).table.set_index("strategy")
    assert gains.loc["good", "gain"].mean() == pytest.approx(0.05)
    assert (gains.loc["good", "ci_low"] <= 0.05 + 1e-9).all() and (gains.loc["good", "ci_high"] >= 0.05 - 1e-9).all()


def test_within_correlation_and_auc_family():
    x = np.arange(9.0)
    groups = np.repeat(["a", "b", "c"], 3)
    y = 2 * x + 10 * (groups == "b")  # a dataset effect, and a perfect slope within datasets
    r = stats.within_correlation(x, y, groups)
    assert r["r"] == pytest.approx(1.0, abs=1e-5) and r["ci_low"] > 0.9
    assert stats.within_correlation([1, 2, 3], [1, 2, 3], ["a", "a", "b"])["r"] is None
    fam = stats.auc_family([0, 1, 2, 3, 4, 5], [0, 1, 1, 1, 1, 1], early_cycles=2)
    assert fam["early_auc"] == pytest.approx(0.5) and fam["late_auc"] == 1.0 and fam["final"] == 1.0
