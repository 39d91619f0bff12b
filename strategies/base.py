"""The one typed contract every query strategy and initial-pool selector follows.

A strategy is a small frozen dataclass: its hyper-parameters are the dataclass fields (with
declared constraints from ``annotated_types``, checked when it is constructed, see
``strategies.params``), and its work is
``select(context, n, rng) -> indices``. It declares which inputs it needs (``needs``), so the
trajectory loop computes only those, and whether it can run with nothing labelled
(``cold_start``), which makes it usable as an initial-pool selector.

Strategies are pure: numpy (and torch where a kernel benefits), no I/O, no global random state.
Every random choice draws from the ``rng`` passed in.
"""

from __future__ import annotations

import dataclasses
import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from strategies.params import check_params


class Need(enum.Enum):
    """Inputs a strategy may ask the trajectory loop to provide in its ``QueryContext``."""

    PROBABILITIES = "probabilities"
    """The learner's class probabilities for every pool row, shape (N, C)."""
    HEAD = "head"
    """The learner's linear head (weights and bias), to predict on perturbed features."""
    LABELS = "labels"
    """The labels of the labelled rows (``-1`` for unlabelled rows)."""
    ORACLE_LABELS = "oracle_labels"
    """The true labels of every pool row. Only for ablations that are not real cold starts."""


class StrategyError(ValueError):
    """A strategy was asked for something it cannot do (the message names the fix)."""


class PoolExhaustedError(StrategyError):
    """More rows were requested than the pool has unlabelled."""


class MissingInputError(StrategyError):
    """The context lacks an input the strategy declared in ``needs``."""


class StrategyParamError(StrategyError):
    """Invalid or unknown parameters; ``problems`` lists each as (parameter, message).

    ``str()`` reads ``typiclust: parameter k must be an int >= 1, got 0`` (joined by ``; ``).
    """

    def __init__(self, strategy: str, problems: list[tuple[str, str]]) -> None:
        self.strategy = strategy
        self.problems = list(problems)
        super().__init__("; ".join(f"{strategy}: parameter {name} {message}" for name, message in problems))


@dataclass(frozen=True)
class LinearHead:
    """A multinomial linear classifier on the embeddings: ``softmax(x @ weights.T + bias)``.

    Classes the learner has not seen yet carry a very negative bias, so their probability is 0.
    """

    weights: np.ndarray
    """(C, D) float32."""
    bias: np.ndarray
    """(C,) float32."""

    @property
    def n_classes(self) -> int:
        return int(self.weights.shape[0])

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weights.T + self.bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Row-wise softmax of the logits (scipy's: max-shifted, stable for large logits)."""
        from scipy.special import softmax  # here: scipy is not needed to read a config

        return softmax(self.logits(features), axis=1)


@dataclass(frozen=True)
class QueryContext:
    """Everything a strategy may look at when it selects. Arrays are read-only views.

    Only ``embeddings``, ``labelled`` and ``n_classes`` are always present; the rest are filled
    when the strategy declares the matching ``Need``.
    """

    embeddings: np.ndarray
    """(N, D) float32: the frozen embeddings of the whole pool."""
    labelled: np.ndarray
    """(N,) bool: True where the row is already labelled."""
    n_classes: int
    """C: the number of classes of the task (some may have no labelled row yet)."""
    labels: np.ndarray | None = None
    """(N,) int64: the label of each labelled row, -1 elsewhere (``Need.LABELS``)."""
    probabilities: np.ndarray | None = None
    """(N, C) float32: the learner's probabilities for every row (``Need.PROBABILITIES``)."""
    head: LinearHead | None = None
    """The learner's linear head (``Need.HEAD``)."""
    oracle_labels: np.ndarray | None = None
    """(N,) int64: true labels of every row (``Need.ORACLE_LABELS``, ablations only)."""
    device: str = "cpu"
    """Where torch kernels run: ``"cpu"`` or ``"cuda"`` (strategies fall back to cpu)."""

    def __post_init__(self) -> None:
        # Read-only views: a strategy that writes into an input raises; the caller's arrays
        # (the trajectory's live labelled mask) stay writeable.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                view = value.view()
                view.flags.writeable = False
                object.__setattr__(self, field.name, view)

    @classmethod
    def for_strategy(
        cls,
        strategy: QueryStrategy,
        embeddings: np.ndarray,
        labelled: np.ndarray,
        n_classes: int,
        *,
        labels: np.ndarray | None = None,
        head: LinearHead | None = None,
        device: str = "cpu",
    ) -> QueryContext:
        """The context holding exactly the inputs ``strategy.needs``, computed only when needed.

        ``labels``: the true label of every pool row; the context's ``labels`` keeps those of
        the labelled rows (``np.where(labelled, labels, -1)``), and ``oracle_labels`` all of
        them, only for ``Need.ORACLE_LABELS``. ``head``: the learner's head; probabilities are
        ``head.predict_proba(embeddings)``. A needed input left None is a ``MissingInputError``.
        """
        needs = strategy.needs
        for need, given, argument in (
            (Need.LABELS, labels, "labels"), (Need.ORACLE_LABELS, labels, "labels"),
            (Need.PROBABILITIES, head, "head"), (Need.HEAD, head, "head"),
        ):
            if need in needs and given is None:
                raise MissingInputError(
                    f"{type(strategy).__name__} needs Need.{need.name}: pass `{argument}`"
                )
        return cls(
            embeddings=embeddings,
            labelled=labelled,
            n_classes=n_classes,
            labels=np.where(labelled, labels, -1) if Need.LABELS in needs else None,
            probabilities=head.predict_proba(embeddings) if Need.PROBABILITIES in needs else None,
            head=head if Need.HEAD in needs else None,
            oracle_labels=labels if Need.ORACLE_LABELS in needs else None,
            device=device,
        )

    @property
    def pool_size(self) -> int:
        return int(self.embeddings.shape[0])

    def unlabelled_indices(self) -> np.ndarray:
        """Indices of the unlabelled rows, ascending."""
        return np.flatnonzero(~self.labelled)

    def labelled_indices(self) -> np.ndarray:
        """Indices of the labelled rows, ascending."""
        return np.flatnonzero(self.labelled)

    def require(self, need: Need) -> np.ndarray | LinearHead:
        """The input for ``need``; a clear error if the caller did not provide it."""
        value = getattr(self, need.value)
        if value is None:
            raise MissingInputError(
                f"the query context has no {need.value!r}: declare Need.{need.name} in the "
                "strategy's `needs` so the trajectory loop provides it"
            )
        return value


class QueryStrategy(ABC):
    """Base of every query strategy and initial-pool selector.

    Subclasses are frozen dataclasses whose fields are the hyper-parameters, set
    ``needs``/``cold_start`` and implement ``_select``. Construction checks every parameter
    against its declared constraints (``StrategyParamError``, every problem at once, values
    normalised as a config's: ``3.0`` for an int is 3); ``select`` validates the rest.
    """

    needs: ClassVar[frozenset[Need]] = frozenset()
    """Inputs this strategy reads from the context beyond embeddings and the labelled mask."""
    cold_start: ClassVar[bool] = False
    """True if the strategy can select with no labelled row (usable as an initial pool)."""
    registered_name: ClassVar[str | None] = None
    """The name it is registered under (set by ``strategies.registry``), for error messages."""
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid"}
    """Unknown parameters are errors in the JSON schema pydantic derives from the class."""

    def __post_init__(self) -> None:
        params = {name: getattr(self, name) for name in self.param_names()}
        values, problems = check_params(type(self), params)
        if problems:
            raise StrategyParamError(self.label(), problems)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor parameters (dataclass fields), in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def label(cls) -> str:
        """The registered name, else the class name."""
        return vars(cls).get("registered_name") or cls.__name__

    def select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        """Choose ``n`` distinct unlabelled pool rows to label next.

        Parameters
        ----------
        context: the pool, the labelled mask and the inputs this strategy declared in ``needs``.
        n: the batch size, 1 <= n <= number of unlabelled rows.
        rng: the trajectory's generator; the only source of randomness (ties included).

        Returns
        -------
        (n,) int64 array of distinct indices into the pool, none of them labelled, in the order
        the strategy ranks them (most wanted first).
        """
        n = int(n)
        n_unlabelled = int(context.pool_size - np.count_nonzero(context.labelled))
        if n < 1:
            raise StrategyError(f"batch size must be at least 1, got {n}")
        if n > n_unlabelled:
            raise PoolExhaustedError(
                f"asked for {n} rows but only {n_unlabelled} are unlabelled: lower the query "
                "batch size or the number of cycles"
            )
        if not self.cold_start and not context.labelled.any():
            raise StrategyError(
                f"{type(self).__name__} needs at least one labelled row; use it as a query "
                "strategy after an initial pool, not as an initial pool"
            )
        for need in self.needs:
            context.require(need)
        chosen = np.asarray(self._select(context, n, rng), dtype=np.int64)
        return chosen

    @abstractmethod
    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``n`` distinct unlabelled indices; inputs are already validated."""
