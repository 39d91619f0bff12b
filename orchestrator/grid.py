"""Grid expansion: datasets x embedders x initial pools x strategies x seeds -> trials.

Preparing a plan loads each dataset once (for its content fingerprint and checks), resolves
each embedder's identity without loading the model, and derives content-addressed store keys
and trial keys.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from orchestrator import preflight
from orchestrator.config import ConfigError, ExperimentConfig
from orchestrator.plugins import trial_plugins
from workers.datasets import DatasetError, TextDataset, load_dataset
from workers.embedders import EmbedderError, resolve_model
from workers.embedders.resolve import kind_name
from workers.embedding import EmbeddingJob
from workers.specs import TrialSpec
from workers.store import embedding_key


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, computed before any work starts."""

    config: ExperimentConfig
    datasets: dict[str, TextDataset]
    jobs: list[EmbeddingJob]
    trials: list[TrialSpec]
    warnings: list[str] = field(default_factory=list)
    """What albench works around or doubts (rows dropped, a device it falls back from, protocol
    checks): printed, the run goes on."""
    dataset_warnings: dict[str, list[str]] = field(default_factory=dict)
    """The warnings about each dataset's protocol, recorded as a tag of its trials' runs."""


def prepare_plan(config: ExperimentConfig, *, writing: bool = True) -> Plan:
    """Load datasets, resolve embedders, check the protocol fits, expand the grid.

    Every problem is collected before one ``ConfigError`` lists them all. ``writing``: also
    check that results can be written (the tracking store, the store folders); read-only
    commands (``status``) skip that.
    """
    problems: list[str] = preflight.problems(config) if writing else []
    datasets: dict[str, TextDataset] = {}
    for index, spec in enumerate(config.datasets):
        try:
            datasets[spec.name] = load_dataset(spec)
        except DatasetError as exc:
            problems.append(f"datasets[{index}] ({spec.name}): {exc}")
    identities: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for index, spec in enumerate(config.embedders):
        try:
            resolved = resolve_model(spec)
            identities[spec.name], kinds[spec.name] = resolved.identity, kind_name(resolved)
        except EmbedderError as exc:
            problems.append(f"embedders[{index}] ({spec.name}): {exc}")
    problems.extend(preflight.duplicate_problems(config, datasets, identities))
    protocol = config.protocol
    for name, data in datasets.items():
        pool = len(data.train_texts)
        held_out = protocol.validation.rows(pool) if protocol.validation is not None else 0
        if protocol.final_labelled + held_out > pool:
            validation = f" plus {held_out} validation rows" if held_out else ""
            problems.append(
                f"protocol: {protocol.final_labelled} labelled rows at the end "
                f"(initial_pool_size + cycles x query_size){validation} exceed dataset {name!r}'s "
                f"pool of {pool} rows; lower protocol.cycles/budget or raise the dataset's subsample.train"
            )
    if problems:
        raise ConfigError(f"{len(problems)} problem(s), found before any work started:\n"
                          + "\n".join(f"  {problem}" for problem in problems))

    jobs = [
        EmbeddingJob(
            dataset_name=d.name,
            embedder=e,
            key=embedding_key(identities[e.name], datasets[d.name].fingerprint),
            identity=identities[e.name],
            dataset_fingerprint=datasets[d.name].fingerprint,
        )
        for d, e in itertools.product(config.datasets, config.embedders)
    ]
    keys = {(j.dataset_name, j.embedder.name): j.key for j in jobs}
    trials = [
        TrialSpec(
            dataset=d.name,
            embedder=e.name,
            dataset_fingerprint=datasets[d.name].fingerprint,
            embedding_key=keys[(d.name, e.name)],
            n_classes=datasets[d.name].n_classes,
            initial_pool=pool,
            strategy=strategy,
            seed=seed,
            protocol=config.protocol,
            learner=config.learner,
            device=config.resources.strategy_device,
            plugins=trial_plugins(d.source.type, kinds[e.name], pool, strategy, config.learner.type),
        )
        for d, e, pool, strategy, seed in itertools.product(
            config.datasets, config.embedders, config.initial_pools, config.strategies, config.seeds
        )
    ]
    per_dataset = preflight.protocol_warnings(config, datasets)
    return Plan(config=config, datasets=datasets, jobs=jobs, trials=trials,
                warnings=preflight.warnings(config, datasets)
                + [w for found in per_dataset.values() for w in found],
                dataset_warnings=per_dataset)
