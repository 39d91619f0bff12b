"""The learner and the curve metrics, against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from workers.learners import LEARNERS, make_learner
from workers.learners.logistic import LogisticRegressionLearner
from workers.learners.mlp import MLPSpec
from workers.metrics import accuracy, macro_f1, normalized_auc
from workers.specs import LogisticRegressionSpec


def fixed(n_classes: int, x: np.ndarray, C: float = 1.0) -> LogisticRegressionLearner:
    return LogisticRegressionLearner(LogisticRegressionSpec(C=C), n_classes, x, seed=0)


def test_normalized_auc_by_hand():
    assert normalized_auc(np.array([10, 20, 40]), np.array([0.5, 0.7, 0.7])) == pytest.approx(
        ((0.5 + 0.7) / 2 * 10 + 0.7 * 20) / 30
    )
    assert normalized_auc(np.array([10, 20]), np.array([1.0, 1.0])) == 1.0
    assert normalized_auc(np.array([10]), np.array([0.3])) == 0.3


# Ours, not scikit-learn's: the same floats, bit for bit, at ~1/50 of the cost per AL cycle.
@pytest.mark.parametrize("n_classes", [2, 3, 77])
@pytest.mark.parametrize("case", ["mixed", "missing_true", "one_predicted", "missing_pred"])
def test_metrics_equal_scikit_learn_bit_for_bit(n_classes, case):
    rng = np.random.default_rng(n_classes)
    for n in (5, 60, 2000):
        for _ in range(20):
            y_true = rng.integers(0, n_classes if case != "missing_true" else max(1, n_classes // 2), n)
            y_pred = np.where(rng.random(n) < rng.random(), y_true, rng.integers(0, n_classes, n))
            if case == "one_predicted":
                y_pred = np.full(n, int(rng.integers(0, n_classes)))
            elif case == "missing_pred":
                y_pred = rng.integers(0, max(1, n_classes // 3), n)
            assert macro_f1(y_true, y_pred, n_classes) == f1_score(y_true, y_pred, average="macro")
            assert accuracy(y_true, y_pred) == accuracy_score(y_true, y_pred)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_head_reproduces_scikit_learn_probabilities(n_classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    y = rng.integers(0, n_classes, 120)
    head = fixed(n_classes + 1, x).fit(x, y)
    reference = LogisticRegression(C=1.0, max_iter=500, tol=1e-4).fit(x, y)
    probabilities = head.predict_proba(x)
    np.testing.assert_allclose(probabilities[:, :n_classes], reference.predict_proba(x), atol=1e-5)
    assert np.all(probabilities[:, n_classes] == 0)  # the unseen class gets no mass


def test_single_labelled_class_predicts_it_everywhere():
    x = np.ones((4, 3), np.float32)
    head = fixed(3, x).fit(x, np.array([2, 2, 2, 2]))
    assert (head.logits(x).argmax(axis=1) == 2).all()


def test_fit_is_deterministic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    a = fixed(4, x).fit(x, y)
    b = fixed(4, x).fit(x, y)
    np.testing.assert_array_equal(a.weights, b.weights)


SPECS = {"tuned logistic": LogisticRegressionSpec(), "standardised logistic": LogisticRegressionSpec(standardize=True),
         "mlp": MLPSpec(hidden=32, max_iter=100)}


def _pool(n=400, d=10, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.5, size=(classes, d))
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_every_learner_kind_keeps_the_contract(spec):
    """All C columns (an unseen class gets probability 0), rows summing to one, one labelled
    class predicted everywhere, deterministic for a seed, and better than chance."""
    assert LEARNERS.names() == ["logistic_regression", "mlp"]
    x, y = _pool()
    seen = y < 3  # class 3 unlabelled
    rows = np.flatnonzero(seen)[:120]
    learner = make_learner(spec, 4, x, seed=5)
    head = learner.fit(x[rows], y[rows])
    probabilities = head.predict_proba(x)
    assert head.logits(x).shape == probabilities.shape == (400, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert np.all(probabilities[:, 3] == 0)
    again = make_learner(spec, 4, x, seed=5).fit(x[rows], y[rows])
    np.testing.assert_array_equal(head.logits(x), again.logits(x))
    held = np.flatnonzero(seen)[200:]
    assert np.mean(head.logits(x[held]).argmax(axis=1) == y[held]) > 0.6
    single = learner.fit(x[:5], np.full(5, 2))
    assert (single.logits(x).argmax(axis=1) == 2).all()


def test_fixed_C_is_exactly_the_learner_of_result_version_1():
    x, y = _pool(seed=3)
    head = make_learner(LogisticRegressionSpec(C=1.0), 4, x, seed=0).fit(x[:80], y[:80])
    reference = LogisticRegression(C=1.0, max_iter=500, tol=1e-4).fit(x[:80], y[:80])
    np.testing.assert_array_equal(head.weights, reference.coef_.astype(np.float32))


def _noisy(n=3000, d=384, classes=3, flip=0.35, seed=0):
    """L2-normalised embeddings of overlapping classes, a share ``flip`` of labels redrawn."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.15, size=(classes, d))
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.normal(size=(n, d)) / np.sqrt(d)
    y = np.where(rng.random(n) < flip, rng.integers(0, classes, n), y)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


@pytest.mark.parametrize(("classes", "rows", "d"), [(2, 60, 384), (3, 80, 384), (5, 200, 64)])
def test_each_candidate_is_the_converged_model(classes, rows, d):
    """``solve`` (in the rows' span when d > rows) gives scikit-learn's model at the same C,
    fitted to a tolerance far tighter than its default (held-out log-loss within 0.2 %, the same
    predictions), at every C of the grid: warm starts
    along the grid save iterations, never convergence (the norm grows with C)."""
    from workers.learners.logistic import RowSpan, predict_proba, solve

    x, y = _noisy(n=rows + 500, d=d, classes=classes)
    span = RowSpan(x[:rows])
    assert span.z.shape[1] == min(rows, d)
    theta, norms = None, []
    for C in GRID:
        theta, iterations = solve(span.z, y[:rows], classes, C, start=theta)
        assert iterations > 0
        reference = LogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(x[:rows].astype(np.float64), y[:rows])
        ours, theirs = predict_proba(theta[0], span.project(x[rows:])), reference.predict_proba(x[rows:])
        held = np.arange(500), y[rows:]  # what the search reads: the held-out log-loss, and predictions
        assert -np.log(ours[held]).sum() == pytest.approx(-np.log(theirs[held]).sum(), rel=2e-3)
        assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.99
        norms.append(np.linalg.norm(span.expand(theta[0][:-1])))
    assert np.all(np.diff(norms) > 0)


def test_the_search_tells_candidates_apart_and_regularises_a_noisy_task():
    """The candidates' held-out scores differ (on the code of result version 2 every candidate
    after the first stopped at once and they all tied), and on a noisy task a C below the
    largest wins, which scores better on the test split than the largest."""
    x, y = _noisy()
    for rows in (40, 80, 220):
        learner = make_learner(LogisticRegressionSpec(C_grid=GRID), 3, x, seed=0)
        head = learner.fit(x[:rows], y[:rows])
        search = learner.search_stats[-1]
        fitted = search["losses"][np.isfinite(search["losses"])]
        assert np.unique(np.round(fitted, 6)).size == fitted.size >= 4
        assert (search["iterations"][: fitted.size] > 0).all()
        C = learner.fit_info()["learner_C"]
        assert C < max(GRID) and learner.fit_info()["learner_searched"] == 1
        largest = fixed(3, x, max(GRID)).fit(x[:rows], y[:rows])
        test = slice(1000, None)
        assert np.mean(head.logits(x[test]).argmax(1) == y[test]) > np.mean(largest.logits(x[test]).argmax(1) == y[test])


def test_a_candidate_regularised_into_the_majority_class_is_never_chosen():
    """20 labels of a weak binary task: the strongest penalties shrink the weights until the
    intercept alone decides (one class for every row); the search passes over such a C even
    when its held-out score is good, so the head predicts both classes."""
    x, y = _noisy(n=2000, d=384, classes=2, flip=0.4, seed=3)
    collapsed = 0
    for seed in range(8):
        rows = np.sort(np.random.default_rng(seed).permutation(2000)[:20])
        learner = make_learner(LogisticRegressionSpec(C_grid=GRID), 2, x, seed=0)
        head = learner.fit(x[rows], y[rows])
        assert np.unique(head.logits(x).argmax(axis=1)).size == 2
        collapsed += np.unique(fixed(2, x, GRID[0]).fit(x[rows], y[rows]).logits(x).argmax(axis=1)).size == 1
    assert collapsed >= 4  # the situation is real: the smallest C collapses on most draws


def test_rare_classes_do_not_switch_the_search_off():
    """40-60 labels of 77 classes, most of them seen once: the search still runs over the rows
    of the classes seen twice or more (singletons always in training) and scores every C it
    walks to."""
    from workers.learners.logistic import MIN_HELD_OUT, fold_of

    x, y = _noisy(n=2000, d=256, classes=77, flip=0.0, seed=2)
    for rows in (40, 60):
        learner = make_learner(LogisticRegressionSpec(C_grid=GRID), 77, x, seed=0)
        learner.fit(x[:rows], y[:rows])
        search = learner.search_stats[-1]
        assert search["held_out"] >= MIN_HELD_OUT and np.isfinite(search["losses"][:2]).all()
        yy = np.unique(y[:rows], return_inverse=True)[1]
        fold = fold_of(yy, 5)
        counts = np.bincount(yy)
        assert (fold[counts[yy] == 1] == -1).all() and (fold >= 0).any()
        for f in range(5):  # every held-out row's class keeps a row in that fold's training part
            assert set(yy[fold == f]) <= set(yy[fold != f])


def test_too_few_held_out_rows_take_the_largest_C():
    """20 labels of 77 classes: a handful of rows can be held out, too few to tell candidates
    apart; the largest C is taken (and recorded as a search), no smaller one is fitted."""
    from workers.learners.logistic import MIN_HELD_OUT

    x, y = _noisy(n=2000, d=256, classes=77, flip=0.0, seed=2)
    learner = make_learner(LogisticRegressionSpec(C_grid=GRID), 77, x, seed=0)
    learner.fit(x[:20], y[:20])
    search = learner.search_stats[-1]
    assert 0 < search["held_out"] < MIN_HELD_OUT and search["grid"] == [max(GRID)]
    assert learner.fit_info() == {"learner_C": max(GRID), "learner_searched": 1.0}


def test_fits_between_searches_start_from_the_search_and_reach_the_same_model():
    """A cycle that reuses the last C starts from the last search's models: fewer iterations
    than from zero, the same head (to the solver's tolerance)."""
    from workers.learners.logistic import RowSpan, solve

    x, y = _noisy(seed=6)
    learner = make_learner(LogisticRegressionSpec(C_grid=GRID), 3, x, seed=0)
    learner.fit(x[:100], y[:100])
    head = learner.fit(x[:140], y[:140])
    assert learner.fit_info()["learner_searched"] == 0
    span, C = RowSpan(x[:140].astype(np.float64)), learner.fit_info()["learner_C"]
    cold, cold_iterations = solve(span.z, y[:140], 3, C)
    _, warm_iterations = solve(span.z, y[:140], 3, C, start=learner._start_in(span, np.arange(3)))
    assert warm_iterations < cold_iterations
    weights = span.expand(cold[0][:-1]).T
    np.testing.assert_allclose(head.weights, weights, atol=2e-3 * np.abs(weights).max())
    np.testing.assert_array_equal(head.logits(x[1000:]).argmax(1), (x[1000:] @ weights.T + cold[0][-1]).argmax(1))


def test_the_validation_split_chooses_C():
    """With a validation split, C is the largest candidate whose Brier score on it is within one
    standard error (paired over its rows) of the lowest; a candidate that predicts one class
    for every labelled row is never chosen."""
    from workers.learners.logistic import RowSpan, predict_proba, solve

    x, y = _noisy(seed=4)
    validation = (x[300:700], y[300:700])
    learner = make_learner(LogisticRegressionSpec(C_grid=GRID), 3, x, seed=0)
    learner.fit(x[:60], y[:60], validation)
    search = learner.search_stats[-1]
    fitted = np.isfinite(search["losses"]) & ~search["collapsed"]
    span = RowSpan(x[:60])
    rows = {}
    for C, usable in zip(GRID, fitted, strict=True):
        if usable:
            p = predict_proba(solve(span.z, y[:60], 3, C)[0][0], span.project(validation[0]))
            rows[C] = np.sum((p - np.eye(3)[validation[1]]) ** 2, axis=1)
    best = min(rows, key=lambda C: rows[C].sum())
    near = [C for C in rows if C >= best and (rows[C] - rows[best]).sum() <= np.sqrt(400) * (rows[C] - rows[best]).std()]
    assert learner.fit_info()["learner_C"] == max(near)
    np.testing.assert_allclose(search["losses"][fitted], [rows[C].sum() for C in rows], rtol=1e-3)


def test_expected_scikit_learn_warnings_stay_inside_the_learner():
    """A fixed C at 20 labels of 30 classes: scikit-learn's convergence and class-count warnings
    are the learner's business; nothing reaches the caller (Ray forwards warnings to the
    terminal)."""
    import warnings

    x, y = _noisy(n=400, d=32, classes=30, flip=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fixed(30, x, 1e6).fit(x[:20], y[:20])
        make_learner(LogisticRegressionSpec(), 30, x, seed=0).fit(x[:20], y[:20])
    assert caught == []


def test_a_resumed_tuned_learner_continues_as_the_uninterrupted_one():
    """Resuming from a checkpoint redoes the last C search on the rows it had then, also when
    the first cycles saw one class only (no search then), so the next heads are identical."""
    x, y = _pool(n=300, seed=6)
    order = list(np.argsort(y, kind="stable")[:4]) + list(np.random.default_rng(1).permutation(300)[:60])
    order = list(dict.fromkeys(int(i) for i in order))  # first 4 rows: one class
    sizes = [4 + 6 * c for c in range(9)]
    whole = make_learner(LogisticRegressionSpec(), 4, x, seed=0)
    heads = [whole.fit(x[np.sort(order[:n])], y[np.sort(order[:n])]) for n in sizes]
    for stop in (1, 3, 6):
        resumed = make_learner(LogisticRegressionSpec(), 4, x, seed=0)
        resumed.resume(x, y, order, sizes[:stop], None)
        for n, head in zip(sizes[stop:], heads[stop:], strict=True):
            again = resumed.fit(x[np.sort(order[:n])], y[np.sort(order[:n])])
            np.testing.assert_array_equal(again.weights, head.weights)
