"""One seeded active-learning trajectory, as a plain generator of per-cycle records.

Used as is by the Ray actor (``workers.actors``) and by the no-Ray baseline in ``bench/``.
Cycle 0 labels the initial pool; each later cycle queries ``query_size`` rows. After every
cycle the learner is refitted from scratch and evaluated on the test split.
"""

from __future__ import annotations

import time
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from strategies import INITIAL_POOLS, QUERY_STRATEGIES, LinearHead, QueryContext, QueryStrategy
from workers.learners import make_learner
from workers.metrics import accuracy, macro_f1
from workers.specs import StrategySpec, TrialSpec, stable_hash


@dataclass(frozen=True)
class TrialData:
    """The embeddings a trial reads: shared read-only through the Ray object store."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass(frozen=True)
class Checkpoint:
    """State after a completed cycle: enough to resume and end with the same curve."""

    cycle: int
    labelled_order: list[int]
    rng_state: dict


CYCLE_METRICS = ("accuracy", "macro_f1", "query_seconds", "fit_seconds", "predicted_classes", "warnings",
                 "learner_C", "learner_searched")
"""The per-cycle metrics of ``CycleRecord.metrics()``, logged with step = labelled rows
(``learner_*``: what the learner reports of its fit, ``Learner.fit_info``; absent for some)."""


@dataclass(frozen=True)
class CycleRecord:
    """What one cycle produced; ``checkpoint`` is the state after it."""

    cycle: int
    n_labelled: int
    accuracy: float
    macro_f1: float
    query_seconds: float
    fit_seconds: float
    checkpoint: Checkpoint = field(repr=False)
    predicted_classes: int = 0
    """Distinct classes the learner predicts on the test split (1: a majority-class learner)."""
    learner: dict[str, float] = field(default_factory=dict)
    """The learner's account of this cycle's fit (``learner_C``, ``learner_searched``)."""
    warnings: int = 0
    """Warnings the cycle's query and fit raised that they do not expect (counted, not printed:
    Ray would forward each to the driver's terminal)."""
    began_at: float = 0.0
    ended_at: float = 0.0
    """Wall-clock seconds since the epoch when the cycle began and ended (its trial run's start
    is its first cycle's, its end its last cycle's)."""

    def metrics(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "query_seconds": self.query_seconds,
            "fit_seconds": self.fit_seconds,
            "predicted_classes": self.predicted_classes,
            "warnings": self.warnings,
            **self.learner,
        }


def build_strategy(spec: StrategySpec, initial_pool: bool = False) -> QueryStrategy:
    registry = INITIAL_POOLS if initial_pool else QUERY_STRATEGIES
    return registry.create(spec.name, spec.params)


def _label_stream(label: str) -> int:
    return zlib.crc32(label.encode())


def initial_pool_generator(trial: TrialSpec) -> np.random.Generator:
    """The trial's generator: a child of its seed, keyed by what pairs trials across strategies.

    The initial pool draws from a stream keyed by (dataset, initial pool) only, so every
    strategy and embedder of a seed starts from the same random pool (a paired design).
    """
    return _stream(trial, trial.initial_pool.label)


def query_generator(trial: TrialSpec) -> np.random.Generator:
    """The generator of every query after the initial pool (one stream per strategy)."""
    dataset_stream = int(trial.dataset_fingerprint[:8], 16)
    return np.random.default_rng(
        np.random.SeedSequence(
            trial.seed,
            spawn_key=(dataset_stream, _label_stream(trial.initial_pool.label), _label_stream(trial.strategy.label)),
        )
    )


def _stream(trial: TrialSpec, name: str) -> np.random.Generator:
    """A generator of the trial's seed for one purpose, shared by every strategy of a seed."""
    dataset_stream = int(trial.dataset_fingerprint[:8], 16)
    return np.random.default_rng(np.random.SeedSequence(trial.seed, spawn_key=(dataset_stream, _label_stream(name))))


def validation_rows(trial: TrialSpec, pool_size: int) -> np.ndarray:
    """The pool rows of the trial's validation split (none without ``protocol.validation``):
    drawn by its seed and dataset only, so every strategy and embedder of a seed shares it."""
    spec = trial.protocol.validation
    if spec is None:
        return np.empty(0, dtype=np.int64)
    return np.sort(_stream(trial, "validation").choice(pool_size, spec.rows(pool_size), replace=False))


def learner_seed(trial: TrialSpec) -> int:
    """The seed of a learner's own randomness (the MLP's initial weights and batches)."""
    return int(_stream(trial, "learner").integers(2**31 - 1))


def initial_pool_key(trial: TrialSpec) -> str:
    """What determines a trial's initial pool: its key without the query strategy and the
    learner (the pool is picked cold, from its own rng stream), so sibling trials share it."""
    payload = trial.key_payload()
    del payload["strategy"], payload["learner"]
    return stable_hash(payload)[:24]


class InitialPoolCache:
    """The last ``size`` initial pools a worker selected, by ``initial_pool_key``.

    Every strategy of a (dataset, embedder, initial pool, seed) starts from the same pool (a
    paired design), so a worker that runs several of them selects it once: a diversity pool
    (TypiClust, Coreset, ProbCover) at 1M rows costs a minute or more. A pool is a pure
    function of its key and the embeddings, so reuse cannot change a curve. Each entry keeps
    the seconds its selection took, logged as cycle 0's query time whether reused or not.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._pools: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pools)

    def select(self, trial: TrialSpec, data: TrialData) -> tuple[np.ndarray, float]:
        """(chosen rows, selection seconds) of the trial's initial pool, computed at most once."""
        key = initial_pool_key(trial)
        if key in self._pools:
            self._pools.move_to_end(key)
            chosen, seconds = self._pools[key]
            return chosen.copy(), seconds
        chosen, seconds = select_initial_pool(trial, data)
        self._pools[key] = (chosen.copy(), seconds)
        while len(self._pools) > self.size:
            self._pools.popitem(last=False)
        return chosen, seconds


def select_initial_pool(trial: TrialSpec, data: TrialData) -> tuple[np.ndarray, float]:
    """(chosen rows, seconds): the trial's initial pool, from its own rng stream."""
    began = time.perf_counter()
    pool = build_strategy(trial.initial_pool, initial_pool=True)
    taken = np.zeros(data.train_x.shape[0], dtype=bool)
    taken[validation_rows(trial, taken.size)] = True  # labelled for validation: never picked
    context = _context(pool, data, taken, None, trial.n_classes, trial.device)
    chosen = pool.select(context, trial.protocol.initial_pool_size, initial_pool_generator(trial))
    return chosen, time.perf_counter() - began


def _context(
    strategy: QueryStrategy, data: TrialData, labelled: np.ndarray, head: LinearHead | None,
    n_classes: int, device: str,
) -> QueryContext:
    return QueryContext.for_strategy(
        strategy, data.train_x, labelled, n_classes, labels=data.train_y, head=head, device=device
    )


def run_trajectory(
    trial: TrialSpec,
    data: TrialData,
    resume: Checkpoint | None = None,
    initial_pools: InitialPoolCache | None = None,
) -> Iterator[CycleRecord]:
    """Yield one ``CycleRecord`` per cycle, from ``resume.cycle + 1`` when resuming.

    ``initial_pools``: where a worker keeps initial pools for the sibling trials it runs next.
    """
    protocol = trial.protocol
    learner = make_learner(trial.learner, trial.n_classes, data.train_x, learner_seed(trial))
    strategy = build_strategy(trial.strategy)
    pool_size = data.train_x.shape[0]
    labelled = np.zeros(pool_size, dtype=bool)
    held_out = validation_rows(trial, pool_size)
    validation = (data.train_x[held_out], data.train_y[held_out]) if held_out.size else None
    counted = held_out.size if protocol.validation is not None and protocol.validation.counts_against_budget else 0
    taken = np.zeros(pool_size, dtype=bool)  # labelled rows and validation rows: never queried
    taken[held_out] = True
    if resume is None:
        order: list[int] = []
        start = 0
        rng = query_generator(trial)
    else:
        order = list(resume.labelled_order)
        labelled[order] = True
        taken[order] = True
        start = resume.cycle + 1
        sizes = [protocol.initial_pool_size + c * protocol.query_size for c in range(start)]
        learner.resume(data.train_x, data.train_y, order, sizes, validation)  # as if never stopped
        rng = np.random.default_rng()
        rng.bit_generator.state = resume.rng_state
    with threadpool_limits(limits=1):
        head = learner.fit(data.train_x[labelled], data.train_y[labelled], validation) if start > 0 else None
        for cycle in range(start, protocol.n_cycles + 1):
            began_at = time.time()
            with warnings.catch_warnings(record=True) as caught:  # not around the yield
                warnings.simplefilter("always")  # what the learner and strategy do not expect
                if cycle == 0:
                    cache = initial_pools if initial_pools is not None else InitialPoolCache(size=0)
                    chosen, query_seconds = cache.select(trial, data)
                else:
                    began = time.perf_counter()
                    context = _context(strategy, data, taken, head, trial.n_classes, trial.device)
                    chosen = strategy.select(context, protocol.query_size, rng)
                    query_seconds = time.perf_counter() - began
                labelled[chosen] = True
                taken[chosen] = True
                order.extend(int(i) for i in chosen)
                began = time.perf_counter()
                head = learner.fit(data.train_x[labelled], data.train_y[labelled], validation)
                fit_seconds = time.perf_counter() - began
                predicted = head.logits(data.test_x).argmax(axis=1)
            yield CycleRecord(
                cycle=cycle,
                n_labelled=int(labelled.sum()) + counted,
                accuracy=accuracy(data.test_y, predicted),
                macro_f1=macro_f1(data.test_y, predicted, trial.n_classes),
                query_seconds=query_seconds,
                fit_seconds=fit_seconds,
                checkpoint=Checkpoint(cycle, list(order), rng.bit_generator.state),
                predicted_classes=int(np.unique(predicted).size),
                learner=learner.fit_info(),
                warnings=len(caught),
                began_at=began_at,
                ended_at=time.time(),
            )
