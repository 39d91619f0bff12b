"""Multinomial logistic regression, fixed C (scikit-learn) or C chosen per cycle (``solve``).

``C: <number>`` is scikit-learn's ``LogisticRegression(C)`` on the labelled rows, unchanged.

``C: auto`` chooses C from the labelled rows alone (never the test split), then fits at it:

- **Candidates are converged models.** Every C of ``C_grid`` is fitted on every fold to
  convergence (``SEARCH_TOL``, far tighter than scikit-learn's default, whose gradient test is on
  the mean loss and passes long before a weakly regularised model has grown), warm-started from
  the next smaller C of the same fold, which only saves iterations (``search_stats`` counts them).
- **In the labelled rows' span.** An L2-penalised linear model's weights lie in the span of its
  training rows, so with more dimensions than rows the search and the final fit run on the
  rows' coordinates in an orthonormal basis of that span (``RowSpan``) and the weights are
  mapped back: the same minimiser, at a cost that grows with the rows, not the dimensions.
- **Folds that keep rare classes.** Stratified folds over the rows of every class with two or
  more rows; a class with a single labelled row is always in training (``fold_of``), so one rare
  class never switches the search off, as at 20 labels of 77 intents.
- **Scored by the held-out Brier score.** Accuracy on folds of a few dozen rows ties most
  candidates; the fold models' held-out Brier score (summed squared error of the probabilities)
  separates them, is bounded where the log-loss lets a few confident mistakes decide, and came
  closest to the hindsight oracle in bench/learner.py (against log-loss, and accuracy with the
  log-loss breaking ties: mean gap 0.91 against 1.08 and 1.73 points). A candidate whose fold
  model predicts one class for every labelled row (shrunk weights, the intercept alone deciding)
  is never chosen. Among the candidates no worse than the best by more than one standard error
  of the paired per-row differences, the largest C wins: at 20 labels a handful of held-out rows
  cannot tell the candidates apart, and the weakly regularised model is the better guess there
  (measured: mean gap 0.91 -> 0.77 points, worst budget 5.9 -> 3.5). The grid is walked
  upwards and stops once the score has risen at two successive candidates (``_stop``).
  With fewer than ``MIN_HELD_OUT`` held-out rows over all folds (20 labels of 43 classes) no
  score can tell the candidates apart and the largest C is taken.
- **The folds of a search in one L-BFGS** (``solve``): their objectives are independent, so
  one optimisation over their sum fits every fold at once.
- **Searched every ``search_growth``.** The search runs on the first cycle with two classes and
  again once the labelled rows have grown by ``search_growth`` since the last one; other cycles
  refit at the last C (``fit_info``: ``learner_C`` and ``learner_searched`` per cycle). Every
  fit until the next search starts from the last search's fold models at its C (averaged):
  fewer iterations to the same minimiser, and a function of that search alone, which a resumed
  trajectory redoes.

With a validation split (``protocol.validation``) the candidates are scored on it instead of
folds. With ``standardize`` the features are standardised with the pool's statistics first. The
head is an ordinary ``LinearHead`` on raw features. Deterministic: fixed folds, L-BFGS.
"""

from __future__ import annotations

import warnings

import numpy as np

from strategies import LinearHead
from workers.learners.base import UNSEEN_CLASS_BIAS, Learner

CV_SEED = 0
"""The folds are a function of the labelled rows alone (shuffled with this fixed seed)."""
SEARCH_TOL, SEARCH_MAX_ITER = 1e-6, 5000
"""Convergence of every model ``C: auto`` fits (scikit-learn's gradient tolerance)."""
MANY_ROWS = 100
"""From this many labelled rows on, 3 folds are enough (fewer fits); below, ``cv_folds``."""
MIN_HELD_OUT = 10
"""Fewer held-out rows than this (over all folds) cannot tell the candidates apart: the largest C
of the grid is taken (as at 20 labels of 43 classes, where 3-6 rows can be held out and their
Brier score prefers the shrunk models that are worst on the test split; bench/learner.py)."""


class RowSpan:
    """The labelled rows in an orthonormal basis of their span, when there are fewer rows than
    dimensions: ``z`` (rows x rank) from the eigendecomposition of their Gram matrix (rows^2 x
    dimensions of work, not a d x d one), ``project(x)`` for other rows, ``expand(coef)`` mapping
    weights in the basis back to feature space. With as many rows as dimensions, the identity."""

    RELATIVE_FLOOR = 1e-10
    """Directions whose squared singular value is below this share of the largest are dropped."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asarray(x, np.float64)
        self.back = None
        if self.x.shape[0] >= self.x.shape[1]:
            self.z = self.x
            return
        values, vectors = np.linalg.eigh(self.x @ self.x.T)
        keep = values > values[-1] * self.RELATIVE_FLOOR
        root = np.sqrt(values[keep])
        self.z = vectors[:, keep] * root  # = x V: U S of x's thin SVD
        self.back = vectors[:, keep] / root  # x.T @ back = V

    def project(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x if self.back is None else (x @ self.x.T) @ self.back

    def expand(self, coef: np.ndarray) -> np.ndarray:
        """Weights (rank x classes) in the basis -> (dimensions x classes)."""
        return coef if self.back is None else self.x.T @ (self.back @ coef)

    def coordinates(self, coef: np.ndarray) -> np.ndarray:
        """Weights (dimensions x classes) -> their projection on the span, in the basis."""
        return coef if self.back is None else self.back.T @ (self.x @ coef)


def solve(z: np.ndarray, y: np.ndarray, k: int, C: float, rows: np.ndarray | None = None,
          weights: np.ndarray | None = None, start: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Multinomial logistic regression by L-BFGS, on one or several row subsets at once.

    Each subset ``f`` (``rows[f]``: a 0/1 mask over the rows; None: one subset of all rows) has
    its own model minimising the (``weights``-weighted) summed cross-entropy of its rows plus
    ||W||^2 / (2 C), with an unpenalised intercept; y in 0..k-1. The subsets' objectives are
    independent, so one L-BFGS over their sum solves each (the folds of a search in one call:
    iterations are the folds' largest, not their sum). Two classes are fitted as a softmax at
    C / 2, which is scikit-learn's binary model at C. Converged when the gradient's largest entry
    is at most ``SEARCH_TOL`` per training row. Returns (parameters (subsets x (z's columns + 1)
    x k): the weights, then the intercept row; iterations)."""
    from scipy.optimize import minimize

    n, r = z.shape
    rows = np.ones((1, n)) if rows is None else np.asarray(rows, np.float64)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    scale = rows[:, :, None] * (1.0 if weights is None else weights[None, :, None])  # subsets x n x 1
    inverse_c = (2.0 if k == 2 else 1.0) / C
    shape = (rows.shape[0], r + 1, k)

    def objective(theta):
        theta = theta.reshape(shape)
        w = theta[:, :r]
        logits = np.matmul(z, w) + theta[:, r:]
        top = logits.max(axis=2, keepdims=True)
        exp = np.exp(logits - top)
        total = exp.sum(axis=2, keepdims=True)
        loss = float(np.sum(scale * (np.log(total) + top - np.sum(logits * onehot, axis=2, keepdims=True))))
        residual = scale * (exp / total - onehot)
        gradient = np.concatenate([np.matmul(z.T, residual) + inverse_c * w,
                                   residual.sum(axis=1, keepdims=True)], axis=1)
        return loss + 0.5 * inverse_c * float(np.sum(w * w)), gradient.ravel()

    theta = np.zeros(np.prod(shape)) if start is None else start.ravel()
    result = minimize(objective, theta, jac=True, method="L-BFGS-B",
                      options={"maxiter": SEARCH_MAX_ITER, "gtol": SEARCH_TOL * rows.sum(axis=1).max(),
                               "ftol": 1e-15, "maxcor": 20})
    return result.x.reshape(shape), int(result.nit)


def predict_proba(theta: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Class probabilities of one model's parameters (``solve``'s (z's columns + 1) x k)."""
    logits = z @ theta[:-1] + theta[-1]
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fold_of(labels: np.ndarray, folds: int) -> np.ndarray:
    """Each row's fold (-1: always in training). Within a class of two or more rows its rows,
    shuffled with ``CV_SEED``, go round the folds from a per-class offset; a singleton class's
    row stays in training. A row is held out at most once; every held-out row's class has a row
    in that fold's training part."""
    rng = np.random.default_rng(CV_SEED)
    fold = np.full(labels.size, -1)
    start = 0
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if rows.size < 2:
            continue
        rows = rows[rng.permutation(rows.size)]
        held = rows if rows.size > folds else rows[:-1]  # a small class keeps one row in training
        fold[held] = (start + np.arange(held.size)) % folds
        start += held.size
    return fold


class LogisticRegressionLearner(Learner):
    """Returns a ``LinearHead`` over all ``n_classes``, so strategies always see C columns even
    when some classes have no labelled row yet."""

    def __init__(self, spec, n_classes: int, pool: np.ndarray, seed: int) -> None:
        super().__init__(spec, n_classes, pool, seed)
        self._C: float | None = None
        self._searched_at: int | None = None
        self._searched_now = False
        self._start: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.search_stats: list[dict] = []
        """One entry per search: its rows, grid, scores and iterations (diagnosis and tests)."""

    def fit_info(self) -> dict[str, float]:
        """The last fit's C and whether it searched (1) or reused the last search's C (0)."""
        if not self.spec.tuned:
            return {"learner_C": float(self.spec.C), "learner_searched": 0.0}
        if self._C is None:  # one class labelled so far: no model fitted
            return {}
        return {"learner_C": float(self._C), "learner_searched": float(self._searched_now)}

    def fit(self, features, labels, validation=None) -> LinearHead:
        weights = np.zeros((self.n_classes, features.shape[1]), dtype=np.float32)
        bias = np.full(self.n_classes, UNSEEN_CLASS_BIAS, dtype=np.float32)
        classes, y = np.unique(labels, return_inverse=True)
        self._searched_now = False
        if classes.size == 1:  # one class labelled so far: it is predicted everywhere
            bias[classes[0]] = 0.0
            return LinearHead(weights, bias)
        x = self._scaled(features)
        if self.spec.tuned:
            span = RowSpan(x)
            C = self.choose_C(span, y, classes, validation)
            theta = solve(span.z, y, classes.size, C, weights=self._row_weights(y, classes.size),
                          start=self._start_in(span, classes))[0][0]
            coef, intercept = span.expand(theta[:-1]).T, theta[-1]
        else:
            with warnings.catch_warnings():  # expected of a fixed C at few labels, many classes
                from sklearn.exceptions import ConvergenceWarning

                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
                model = self._model(self.spec.C).fit(x, labels)
            coef, intercept = model.coef_, model.intercept_
            if classes.size == 2:  # binary: sklearn keeps one row; the softmax equivalent is +-w/2
                coef = np.vstack([-coef[0] / 2, coef[0] / 2])
                intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        if self.scaler is not None:  # (x - m) / s . w + b  =  x . (w / s) + (b - (w / s) . m)
            coef = coef / self.scaler.scale
            intercept = intercept - coef @ self.scaler.mean
        weights[classes] = coef
        bias[classes] = intercept
        return LinearHead(weights, bias)

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        return x if self.scaler is None else self.scaler(x)

    def _row_weights(self, y: np.ndarray, k: int) -> np.ndarray | None:
        """``class_weight: balanced``: rows / (classes x the row's class count), as scikit-learn."""
        if self.spec.class_weight is None:
            return None
        return (y.size / (k * np.bincount(y, minlength=k)))[y]

    def _model(self, C: float):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=self.spec.max_iter, tol=self.spec.tol,
                                  class_weight=self.spec.class_weight)

    def choose_C(self, span: RowSpan, y: np.ndarray, classes: np.ndarray,
                 validation: tuple[np.ndarray, np.ndarray] | None) -> float:
        """C for these labelled rows: searched again once they have grown by ``search_growth``
        since the last search, else the last search's C."""
        n = y.size
        if self._searched_at is not None and n < self.spec.search_growth * self._searched_at:
            return self._C
        self._C, self._start = self.search_C(span, y, classes, validation)
        self._searched_at, self._searched_now = n, True
        return self._C

    def _start_in(self, span: RowSpan, classes: np.ndarray) -> np.ndarray | None:
        """The last search's fold models at its C, averaged, as the starting point of the fits
        until the next search, in ``span``'s coordinates and over ``classes`` (a class labelled
        since starts at zero). Only saves iterations: the fit converges to the same minimiser.
        A function of the last search alone, so a resumed trajectory starts its fits alike."""
        if self._start is None:
            return None
        known, coef, intercept = self._start
        start = np.zeros((span.z.shape[1] + 1, classes.size))
        at = np.searchsorted(classes, known)
        present = (at < classes.size) & (classes[np.minimum(at, classes.size - 1)] == known)
        start[:-1, at[present]] = span.coordinates(coef[:, present])
        start[-1, at[present]] = intercept[present] - intercept[present].mean()
        return start

    def resume(self, features: np.ndarray, labels: np.ndarray, order: list[int], sizes: list[int],
               validation: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Continue a trajectory from a checkpoint as if it had never stopped: redo the last
        search it did, on the rows it had then (``order``: the labelling order; ``sizes``: the
        labelled rows of each cycle so far)."""
        if not self.spec.tuned:
            return
        last = None  # the first search came with the first fit that saw two classes
        for n in sizes:
            if last is None and np.unique(labels[np.asarray(order[:n])]).size < 2:
                continue
            if last is None or n >= self.spec.search_growth * last:
                last = n
        if last is None:
            return
        rows = np.sort(np.asarray(order[:last]))  # in a mask's row order, as the search had them
        classes, y = np.unique(labels[rows], return_inverse=True)
        self._C, self._start = self.search_C(RowSpan(self._scaled(features[rows])), y, classes, validation)
        self._searched_at = last

    def search_C(self, span: RowSpan, y: np.ndarray, classes: np.ndarray,
                 validation: tuple[np.ndarray, np.ndarray] | None) -> tuple[float, tuple | None]:
        """The C of ``C_grid`` whose converged models have the lowest held-out Brier score (on
        the validation split when there is one, else summed over folds of the labelled rows), or
        the largest C within one standard error of it (paired over the held-out rows); never a C
        whose model predicts one class for every labelled row. The middle of the grid only when
        no row can be held out (every class labelled once)."""
        grid, k = sorted(self.spec.C_grid), classes.size
        weights = self._row_weights(y, k)
        if validation is not None:
            known = np.isin(validation[1], classes)  # a class never labelled costs every C the same
            held_y = np.searchsorted(classes, validation[1][known])
            splits = [(np.arange(y.size), span.project(self._scaled(validation[0][known])), held_y)]
        else:
            folds = self.spec.cv_folds if y.size < MANY_ROWS else min(self.spec.cv_folds, 3)
            fold = fold_of(y, folds)
            splits = [(np.flatnonzero(fold != f), span.z[fold == f], y[fold == f]) for f in range(folds)]
            splits = [split for split in splits if split[2].size]
        if not splits or not splits[0][2].size:
            return grid[len(grid) // 2], None
        held_out = sum(split[2].size for split in splits)
        if held_out < MIN_HELD_OUT:
            grid = grid[-1:]  # too few rows to tell candidates apart (MIN_HELD_OUT): the largest C
        train = np.array([np.isin(np.arange(y.size), rows) for rows, _, _ in splits])
        losses = np.full(len(grid), np.inf)
        per_row: list[np.ndarray] = []
        models: list[np.ndarray] = []
        collapsed = np.zeros(len(grid), dtype=bool)
        iterations = np.zeros(len(grid), dtype=int)
        theta = None  # warm start along the grid: fewer iterations, the same optimum
        for index, C in enumerate(grid):
            theta, iterations[index] = solve(span.z, y, k, C, train, weights, theta)
            models.append(theta)
            per_row.append(np.concatenate([_row_scores(predict_proba(theta[s], held_z), held_y)
                                           for s, (_, held_z, held_y) in enumerate(splits)]))
            losses[index] = per_row[-1].sum()
            # Regularised into the majority class: a fold model predicting one class for every
            # labelled row (the intercept outweighs the shrunk weights). Never chosen.
            collapsed[index] = any(np.unique((span.z @ t[:-1] + t[-1]).argmax(axis=1)).size == 1 for t in theta)
            if _stop(losses, index):
                break  # the larger C are not fitted (iterations 0, score inf)
        self.search_stats.append({"rows": y.size, "grid": grid, "losses": losses, "iterations": iterations,
                                  "collapsed": collapsed, "held_out": held_out, "per_row": per_row})
        chosen = _choice(per_row, losses, collapsed)
        average = models[chosen].mean(axis=0)
        return grid[chosen], (classes, span.expand(average[:-1]), average[-1])


def _within_one_se(scores: np.ndarray, best: np.ndarray) -> bool:
    """Whether a candidate's held-out scores are no worse than the best's by more than one
    standard error of their paired per-row differences."""
    difference = scores - best
    return difference.sum() <= np.sqrt(difference.size) * difference.std()


def _stop(losses: np.ndarray, index: int) -> bool:
    """Whether the walk up the grid stops after candidate ``index``: the score has risen at two
    successive candidates. The weakly regularised models, the slowest to fit, are fitted only
    where they may win, and the one-standard-error choice reaches no further than the rise
    (measured against stopping at the first candidate beyond one standard error: mean gap 0.51
    against 0.50 points on bench/learner.py's tasks, but that one lets a noisy 3-class task at
    40 labels take C = 10000, 5 points below C = 1 on its test split)."""
    return index >= 2 and losses[index] > losses[index - 1] > losses[index - 2]


def _choice(per_row: list[np.ndarray], losses: np.ndarray, collapsed: np.ndarray) -> int:
    """The index of the chosen candidate: the largest C within one standard error of the lowest
    held-out score, never a collapsed one (the largest fitted one when every one collapsed)."""
    if collapsed[: len(per_row)].all():
        return len(per_row) - 1
    best = int(np.argmin(np.where(collapsed, np.inf, losses)))
    for index in range(len(per_row) - 1, best, -1):
        if not collapsed[index] and _within_one_se(per_row[index], per_row[best]):
            return index
    return best


def _row_scores(probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's Brier score ||p_i - onehot(y_i)||^2."""
    return np.sum(probabilities * probabilities, axis=1) - 2 * probabilities[np.arange(y.size), y] + 1.0

