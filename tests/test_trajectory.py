"""One trajectory without Ray: reproducible, resumable to the identical curve, paired pools."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workers.learners.mlp import MLPSpec
from workers.specs import (
    LogisticRegressionSpec,
    ProtocolSpec,
    StrategySpec,
    TrialSpec,
    ValidationSpec,
)
from workers.trajectory import Checkpoint, InitialPoolCache, TrialData, initial_pool_key, run_trajectory


@pytest.fixture(scope="module")
def data() -> TrialData:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=2.0, size=(4, 12))
    y = rng.integers(0, 4, 600)
    x = (centres[y] + rng.normal(size=(600, 12))).astype(np.float32)
    return TrialData(x[:400], y[:400], x[400:], y[400:])


def trial(strategy="margin", seed=0, pool="random", learner=None, validation=None) -> TrialSpec:
    return TrialSpec(
        dataset="d", embedder="e", dataset_fingerprint="ab" * 32, embedding_key="cd" * 32,
        n_classes=4, initial_pool=StrategySpec(name=pool), strategy=StrategySpec(name=strategy),
        seed=seed, protocol=ProtocolSpec(initial_pool_size=8, query_size=8, cycles=6, validation=validation),
        learner=learner or LogisticRegressionSpec(),
    )


def curve(records):
    return [(r.n_labelled, r.accuracy, r.macro_f1) for r in records]


def test_same_trial_same_curve(data):
    assert curve(run_trajectory(trial(), data)) == curve(run_trajectory(trial(), data))


def test_curve_has_one_point_per_cycle_and_grows_by_query_size(data):
    records = list(run_trajectory(trial(), data))
    assert [r.n_labelled for r in records] == [8, 16, 24, 32, 40, 48, 56]
    assert [r.cycle for r in records] == list(range(7))
    order = records[-1].checkpoint.labelled_order
    assert len(order) == len(set(order)) == 56


@pytest.mark.parametrize("strategy", ["random", "margin", "entropy"])
@pytest.mark.parametrize("stop_after", [0, 3])
def test_resume_from_checkpoint_gives_the_uninterrupted_curve(data, strategy, stop_after):
    full = list(run_trajectory(trial(strategy), data))
    saved = full[stop_after].checkpoint
    restored = Checkpoint(**json.loads(json.dumps(saved.__dict__)))  # through JSON, as on disk
    resumed = list(run_trajectory(trial(strategy), data, resume=restored))
    assert curve(full[: stop_after + 1] + resumed) == curve(full)


def test_every_cycle_logs_the_learners_C_and_whether_it_searched(data):
    """C: auto searches at 8 labelled rows, then whenever they have doubled (16, 32); the other
    cycles reuse the last C. Every C is one of the grid; no warning escapes a cycle."""
    records = list(run_trajectory(trial(), data))
    searched = [r.n_labelled for r in records if r.metrics()["learner_searched"] == 1]
    assert searched == [8, 16, 32]
    assert all(r.metrics()["learner_C"] in LogisticRegressionSpec().C_grid for r in records)
    assert [r.metrics()["warnings"] for r in records] == [0] * len(records)
    fixed = list(run_trajectory(trial(learner=LogisticRegressionSpec(C=3.0)), data))
    assert {(r.metrics()["learner_C"], r.metrics()["learner_searched"]) for r in fixed} == {(3.0, 0.0)}


def test_unexpected_warnings_are_counted_per_cycle_not_printed(data, monkeypatch):
    """A warning nothing expects is counted in the cycle's ``warnings`` metric and does not
    reach the caller (inside an actor Ray would print each on the driver's terminal)."""
    import warnings

    from workers.learners.logistic import LogisticRegressionLearner

    original = LogisticRegressionLearner.fit

    def fit(self, *args, **kwargs):
        warnings.warn("something odd", RuntimeWarning, stacklevel=1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegressionLearner, "fit", fit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(run_trajectory(trial(), data))
    assert [r.metrics()["warnings"] for r in records] == [1] * len(records)
    assert caught == []


def test_seed_changes_the_curve_and_strategies_share_the_initial_pool(data):
    a = list(run_trajectory(trial("margin", seed=0), data))
    b = list(run_trajectory(trial("entropy", seed=0), data))
    c = list(run_trajectory(trial("margin", seed=1), data))
    assert a[0].checkpoint.labelled_order == b[0].checkpoint.labelled_order  # paired design
    assert a[0].checkpoint.labelled_order != c[0].checkpoint.labelled_order


@pytest.mark.parametrize("pool", ["typiclust", "coreset", "random"])
def test_initial_pool_cache_is_shared_by_siblings_and_changes_no_curve(data, pool):
    cache = InitialPoolCache(size=2)
    trials = [trial(s, seed=seed, pool=pool) for seed in (0, 1) for s in ("margin", "coreset", "random")]
    cached = [curve(run_trajectory(t, data, initial_pools=cache)) for t in trials]
    assert len(cache) == 2  # one pool per seed, whatever the strategy
    assert cached == [curve(run_trajectory(t, data)) for t in trials]
    assert initial_pool_key(trials[0]) == initial_pool_key(trials[1]) != initial_pool_key(trials[3])
    assert initial_pool_key(trial(pool="typiclust")) != initial_pool_key(trial(pool="random"))


def test_initial_pool_cache_forgets_the_oldest_and_reports_the_selection_time(data):
    cache = InitialPoolCache(size=1)
    first, seconds = cache.select(trial(seed=0, pool="typiclust"), data)
    again, seconds_again = cache.select(trial("entropy", seed=0, pool="typiclust"), data)
    np.testing.assert_array_equal(first, again)
    assert seconds_again == seconds > 0
    cache.select(trial(seed=5, pool="typiclust"), data)
    assert len(cache) == 1
    records = list(run_trajectory(trial(seed=0, pool="typiclust"), data, initial_pools=cache))
    assert records[0].query_seconds > 0 and records[0].checkpoint.labelled_order == first.tolist()


def test_trial_key_ignores_display_names_but_not_settings():
    base = trial()
    assert base.model_copy(update={"dataset": "renamed"}).trial_key == base.trial_key
    assert trial(seed=1).trial_key != base.trial_key
    assert trial("entropy").trial_key != base.trial_key


# ------------------------------------------------------------------- learners and protocol


LEARNERS = {"tuned": LogisticRegressionSpec(), "fixed C=1": LogisticRegressionSpec(C=1.0),
            "mlp": MLPSpec(hidden=16, max_iter=50)}


@pytest.mark.parametrize("learner", LEARNERS.values(), ids=LEARNERS.keys())
def test_every_learner_gives_the_same_curve_for_the_same_seed(data, learner):
    first = list(run_trajectory(trial(learner=learner), data))
    assert curve(first) == curve(run_trajectory(trial(learner=learner), data))
    assert all(1 <= r.predicted_classes <= 4 for r in first)


@pytest.mark.parametrize("strategy", ["random", "margin", "badge", "coreset", "typiclust", "probcover",
                                      "dropquery", "alfamix", "entropy", "least_confidence"])
def test_no_strategy_or_learner_reads_the_test_labels(data, strategy):
    """Scrambled test labels change the scores, never a choice: the labelled rows, in order,
    are the same (a strategy or learner that read test labels would choose otherwise)."""
    scrambled = TrialData(data.train_x, data.train_y, data.test_x,
                          np.random.default_rng(7).permutation(data.test_y))
    for learner in (LogisticRegressionSpec(), MLPSpec(hidden=16, max_iter=50)):
        if strategy in ("dropquery", "alfamix") and learner.type == "mlp":
            continue
        spec = trial(strategy, learner=learner, validation=ValidationSpec(size=20))
        clean = [r.checkpoint.labelled_order for r in run_trajectory(spec, data)]
        other = list(run_trajectory(spec, scrambled))
        assert [r.checkpoint.labelled_order for r in other] == clean
        assert curve(other) != curve(run_trajectory(spec, data))  # the scores did see them


def test_the_validation_split_is_held_out_of_the_labelled_pool(data):
    from workers.trajectory import validation_rows

    spec = trial("coreset", validation=ValidationSpec(size=30))
    held = set(validation_rows(spec, data.train_x.shape[0]).tolist())
    assert len(held) == 30 and max(held) < data.train_x.shape[0]  # pool rows: never the test split
    records = list(run_trajectory(spec, data))
    assert not held & set(records[-1].checkpoint.labelled_order)
    assert [r.n_labelled for r in records] == [30 + 8 * (c + 1) for c in range(7)]  # counted
    apart = trial("coreset", validation=ValidationSpec(size=30, counts_against_budget=False))
    assert [r.n_labelled for r in run_trajectory(apart, data)] == [8 * (c + 1) for c in range(7)]
    assert set(validation_rows(trial("margin", validation=ValidationSpec(size=30)), 400).tolist()) == held


@pytest.mark.parametrize("seconds", [0.0, 3600.0])
def test_the_actor_streams_every_cycle_in_order_in_batches(data, monkeypatch, seconds):
    from workers import actors

    monkeypatch.setattr(actors, "STREAM_SECONDS", seconds)
    batches = list(actors.TrajectoryWorker().run(trial(), data))
    # 0 s: one batch per cycle; an hour: the whole trajectory in one batch at its end
    assert [len(b) for b in batches] == ([1] * 7 if seconds == 0 else [7])
    assert curve([r for b in batches for r in b]) == curve(run_trajectory(trial(), data))
