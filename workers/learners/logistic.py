"""Multinomial logistic regression (scikit-learn's L-BFGS), fixed C or C chosen per cycle.

``C: auto`` chooses C from the labelled rows alone: stratified k-fold cross-validation over
``C_grid`` (warm-started along the grid within each fold; the largest mean accuracy wins, the
larger C within one held-out row of it: at a handful of labels the folds rarely tell the candidates apart,
and strong regularisation then predicts the majority class), or, when the protocol has a
validation split, the C with the best validation accuracy. The search runs on the first cycle
and again whenever the labelled rows have doubled since the last one (``search_growth``); a
search costs about ten fits, so searching every cycle would triple a trajectory's time (measured
in bench/learner.py), while the best C moves slowly with the number of labels. Where the labelled
rows cannot be split (a class with a single row), the middle of the grid is used. A C whose
model predicts one class for every pool row, or for every labelled row, while several classes
are labelled is passed over for the next larger one (no label beyond the labelled rows). With ``standardize`` the features are
standardised with the pool's statistics and the head is mapped back to raw features, so
strategies and evaluation always see an ordinary ``LinearHead``. Deterministic: fixed folds,
L-BFGS.
"""

from __future__ import annotations

import warnings

import numpy as np

from strategies import LinearHead
from workers.learners.base import UNSEEN_CLASS_BIAS, Learner

CV_SEED = 0
"""The folds are a function of the labelled rows alone (shuffled with this fixed seed)."""
MANY_ROWS = 60
"""From this many labelled rows on, 3 folds are enough (fewer fits); below, ``cv_folds``."""
SEARCH_TOL, SEARCH_MAX_ITER = 1e-2, 100
CHECK_ROWS = 20_000
"""The one-class check predicts on at most about this many pool rows (a strided sample)."""
"""The search's L-BFGS stops early: it ranks the candidates, it keeps no model."""




class LogisticRegressionLearner(Learner):
    """Returns a ``LinearHead`` over all ``n_classes``, so strategies always see C columns even
    when some classes have no labelled row yet."""

    kind = "logistic_regression"

    def __init__(self, spec, n_classes: int, pool: np.ndarray, seed: int) -> None:
        super().__init__(spec, n_classes, pool, seed)
        self._C: float | None = None
        self._searched_at: int | None = None
        self._check: np.ndarray | None = None

    def fit(self, features, labels, validation=None) -> LinearHead:
        dim = features.shape[1]
        weights = np.zeros((self.n_classes, dim), dtype=np.float32)
        bias = np.full(self.n_classes, UNSEEN_CLASS_BIAS, dtype=np.float32)
        seen = np.unique(labels)
        if seen.size == 1:  # one class labelled so far: it is predicted everywhere
            bias[seen[0]] = 0.0
            return LinearHead(weights, bias)
        x = features if self.scaler is None else self.scaler(features)
        with warnings.catch_warnings():
            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.spec.tuned:
                model = self._not_one_class(self.choose_C(x, labels, validation), x, labels)
            else:
                model = self._model(self.spec.C).fit(x, labels)
        coef, intercept = model.coef_, model.intercept_
        if seen.size == 2:  # binary: sklearn keeps one row; the softmax equivalent is +-w/2
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        if self.scaler is not None:  # (x - m) / s . w + b  =  x . (w / s) + (b - (w / s) . m)
            coef = coef / self.scaler.scale
            intercept = intercept - coef @ self.scaler.mean
        weights[model.classes_] = coef
        bias[model.classes_] = intercept
        return LinearHead(weights, bias)

    def _model(self, C: float):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=self.spec.max_iter, tol=self.spec.tol,
                                  class_weight=self.spec.class_weight)

    def choose_C(self, x: np.ndarray, labels: np.ndarray,
                 validation: tuple[np.ndarray, np.ndarray] | None) -> float:
        """C for these labelled rows: searched again once they have doubled since the last
        search (``search_growth``), else the last search's C (see ``resume``)."""
        n = labels.size
        if self._searched_at is not None and n < self.spec.search_growth * self._searched_at:
            return self._C
        self._C, self._searched_at = self.search_C(x, labels, validation), n
        return self._C

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
        x = features[rows] if self.scaler is None else self.scaler(features[rows])
        self._C, self._searched_at = self.search_C(x, labels[rows], validation), last

    def search_C(self, x: np.ndarray, labels: np.ndarray,
                 validation: tuple[np.ndarray, np.ndarray] | None) -> float:
        """The C of ``C_grid`` with the best validation accuracy, or else the best mean
        accuracy over stratified folds of the labelled rows (the larger C on ties)."""
        grid = sorted(self.spec.C_grid)
        if validation is not None:
            val_x = validation[0] if self.scaler is None else self.scaler(validation[0])
            scores = [float(np.mean(self._model(C).fit(x, labels).predict(val_x) == validation[1]))
                      for C in grid]
        else:
            counts = np.bincount(labels)
            wanted = self.spec.cv_folds if labels.size < MANY_ROWS else min(self.spec.cv_folds, 3)
            folds = min(wanted, int(counts[counts > 0].min()))
            if folds < 2:
                return grid[len(grid) // 2]
            scores = self._fold_scores(x, labels, grid, folds)
        # The larger C among those within one held-out row of the best: at a few labels the
        # folds differ by single rows, and the weaker penalty is the safer guess (measured).
        slack = 1.0 / labels.size if validation is None else 1.0 / validation[1].size
        best = np.flatnonzero(np.asarray(scores) >= np.max(scores) - slack - 1e-12)
        return grid[int(best[-1])]

    def _fold_scores(self, x: np.ndarray, labels: np.ndarray, grid: list[float], folds: int) -> np.ndarray:
        """Mean held-out accuracy of each C over stratified folds, warm-started along the grid
        within a fold; the search's L-BFGS stops early (it ranks candidates, keeps no model)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        scores = np.zeros(len(grid))
        for train, held in StratifiedKFold(folds, shuffle=True, random_state=CV_SEED).split(x, labels):
            model = LogisticRegression(C=grid[0], max_iter=SEARCH_MAX_ITER, tol=SEARCH_TOL,
                                       class_weight=self.spec.class_weight, warm_start=True)
            for index, C in enumerate(grid):
                model.set_params(C=C).fit(x[train], labels[train])
                scores[index] += np.mean(model.predict(x[held]) == labels[held]) / folds
        return scores

    def _check_rows(self) -> np.ndarray:
        """The pool rows the one-class check predicts on: every row up to ``CHECK_ROWS``, else
        an evenly strided sample of about that many (computed once)."""
        if self._check is None:
            rows = self.pool[:: max(1, self.pool.shape[0] // CHECK_ROWS)]
            self._check = rows if self.scaler is None else self.scaler(rows)
        return self._check

    def _not_one_class(self, C: float, x: np.ndarray, labels: np.ndarray):
        """The model at C, or at the next larger C of the grid while it predicts one class for
        every pool row or every labelled row (several classes labelled: regularised into the
        majority class)."""
        grid = sorted(self.spec.C_grid)
        model = self._model(C).fit(x, labels)
        pool = self._check_rows()
        for larger in (c for c in grid if c > C):
            if np.unique(model.predict(pool)).size > 1 and np.unique(model.predict(x)).size > 1:
                break
            model = self._model(larger).fit(x, labels)
        return model
