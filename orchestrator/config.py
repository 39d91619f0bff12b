"""The experiment config (``experiments.yaml``): pydantic v2 models, every field documented.

``load_config`` parses YAML with ``yaml.safe_load`` (configs never execute code) and turns every
validation problem into a ``ConfigError`` whose lines name the field path and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from strategies import INITIAL_POOLS, QUERY_STRATEGIES, Need
from workers.datasets import SOURCES, DatasetSpec
from workers.fs import is_remote, location
from workers.specs import (
    LEARNERS,
    EmbedderSpec,
    LearnerSpec,
    LogisticRegressionSpec,
    ProtocolSpec,
    StrategySpec,
)


class ConfigError(ValueError):
    """A config problem; ``str()`` names each offending field and the fix."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourcesConfig(Section):
    """What each unit of work asks Ray for."""

    gpus_per_embedding: float = Field(
        1.0, ge=0, description="GPUs per embedding actor when the cluster has GPUs."
    )
    cpus_per_embedding: float = Field(
        2.0, gt=0, description="CPUs per embedding actor when it runs on CPU."
    )
    embedding_shard_rows: int = Field(
        20_000, ge=1, description="Rows per embedding store shard (a killed actor resumes at the "
        "first missing shard)."
    )
    embedding_token_budget: int = Field(
        16_384, ge=16, description="Padded tokens per embedding batch (length-sorted texts)."
    )
    cpus_per_trajectory: float = Field(1.0, gt=0, description="CPUs per trajectory actor.")
    max_concurrency: int | None = Field(
        None, ge=1, description="Most trajectory actors at once (None: as many as CPUs allow)."
    )
    strategy_device: str = Field(
        "cpu", pattern="^(cpu|cuda)$", description="Where strategy kernels run: cpu or cuda."
    )


class TrackingConfig(Section):
    """Where results go."""

    uri: str = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db); "
        "http(s)://user:password@host works for a server behind basic auth; passwords are shown "
        "as ***; in a sqlite:/// path ~ and $VAR/${VAR} are expanded.",
    )
    experiment: str | None = Field(None, description="MLflow experiment name (default: config name).")
    backend: str = Field("mlflow", description="Tracking backend: mlflow, or a plug-in's (entry-point "
                         "group albench.tracking).")
    outage_seconds: float = Field(
        180.0, gt=0, description="How long `albench run` waits for a tracking store that takes no "
        "write (down, unreachable) before it stops with exit 1; what was recorded is kept and a "
        "rerun resumes (MLflow's own retries, MLFLOW_HTTP_REQUEST_MAX_RETRIES, may end it sooner)."
    )

    @field_validator("backend")
    @classmethod
    def _backend_known(cls, backend: str) -> str:
        from orchestrator.tracking import BACKENDS

        if backend not in BACKENDS:
            raise ValueError(f"unknown tracking backend {backend!r}; valid: {', '.join(BACKENDS.names())}")
        return backend


def _store_location(value: Any) -> Any:
    """A URI (``s3://bucket/prefix``) stays a string; anything else is a local ``Path``."""
    if isinstance(value, str) and not is_remote(value):
        return location(value)  # file:///x too
    return value


StoreLocation = Annotated[Path | str, BeforeValidator(_store_location)]
"""A local folder (``Path``) or an object-store URI (``str``: ``s3://bucket/prefix``, ``gs://``...)."""


class StoreConfig(Section):
    """The Parquet embedding store and the checkpoints: local folders or object-store URIs
    (endpoint, region and credentials from the environment: AWS_ENDPOINT_URL, AWS_REGION,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; never in the config)."""

    path: StoreLocation = Field(Path("./embeddings"), description="Folder or object-store URI "
                                "(s3://bucket/prefix) of the embedding store; ~ and $VAR/${VAR} "
                                "are expanded (an unset variable is refused).")
    checkpoints: StoreLocation = Field(
        Path("./.albench/checkpoints"), description="Folder or object-store URI of per-trial "
        "resume checkpoints; ~ and $VAR/${VAR} are expanded (an unset variable is refused)."
    )


class ReportConfig(Section):
    """``albench report`` settings (all optional)."""

    early_cycles: int | None = Field(default=None, ge=1,
                                     description="Cycles in the early AUC (default: a third).")
    tie_threshold: float = Field(default=0.0, ge=0.0,
                                 description="Paired differences below this are ties.")
    embedder_quality: dict[str, float] = Field(default_factory=dict,
                                               description="User-supplied quality per embedder.")
    metric: Literal["accuracy", "macro_f1"] = Field(
        default="accuracy", description="The curve metric the report ranks and answers by (the other "
                                        "metric's headline is shown beside it).")


class ExperimentConfig(Section):
    """A benchmark grid: datasets x embedders x initial pools x strategies x seeds."""

    name: str = Field(min_length=1, description="Experiment name (the MLflow experiment).")
    datasets: list[DatasetSpec] = Field(min_length=1, description="Text classification tasks.")
    embedders: list[EmbedderSpec] = Field(min_length=1, description="Frozen text embedders.")
    protocol: ProtocolSpec = Field(description="Initial pool size, query size, cycles or budget.")
    initial_pools: list[StrategySpec] = Field(
        default_factory=lambda: [StrategySpec(name="random")],
        min_length=1,
        description="Initial-pool selectors (name + params).",
    )
    strategies: list[StrategySpec] = Field(min_length=1, description="Query strategies.")
    learner: LearnerSpec = Field(default_factory=LogisticRegressionSpec,
                                 description="The learner: logistic_regression (default) or mlp.")
    seeds: list[int] = Field(min_length=1, description="Seeds: one trial per seed per cell.")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("seeds")
    @classmethod
    def _seeds_valid(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be non-negative integers")
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds

    @field_validator("strategies")
    @classmethod
    def _strategies_known(cls, specs: list[StrategySpec]) -> list[StrategySpec]:
        return _resolve_all(specs, QUERY_STRATEGIES)

    @field_validator("initial_pools")
    @classmethod
    def _pools_known(cls, specs: list[StrategySpec]) -> list[StrategySpec]:
        return _resolve_all(specs, INITIAL_POOLS)

    @model_validator(mode="after")
    def _names_unique(self) -> ExperimentConfig:
        problems = []
        for field, labels in (
            ("datasets", [d.name for d in self.datasets]),
            ("embedders", [e.name for e in self.embedders]),
            ("strategies", [s.label for s in self.strategies]),
            ("initial_pools", [s.label for s in self.initial_pools]),
        ):
            for label in sorted({x for x in labels if labels.count(x) > 1}):
                where = [i for i, x in enumerate(labels) if x == label]
                problems.append(f"{field}[{where[1]}]: duplicate entry {label!r} (also {field}[{where[0]}]); "
                                "give each a unique name")
        for index, spec in enumerate(self.strategies):
            missing = QUERY_STRATEGIES.get(spec.name).needs & FROM_LEARNER - self.learner.provides
            for need in sorted(missing, key=lambda n: n.value):
                givers = [n for n, cls in LEARNERS.items() if need in cls.provides]
                problems.append(f"strategies[{index}]: {spec.name} needs the learner's {need.value}, "
                                f"which learner.type {self.learner.type} does not provide; fix: "
                                f"remove it or use learner.type: {' or '.join(givers)}")
        field = "tracking.experiment" if self.tracking.experiment is not None else "name"
        if len(self.experiment_name) > EXPERIMENT_NAME_LIMIT:
            problems.append(f"{field}: {len(self.experiment_name)} characters, over MLflow's limit of "
                            f"{EXPERIMENT_NAME_LIMIT} for an experiment name; fix: shorten {field}")
        if problems:
            raise ValueError(PROBLEMS.join(problems))
        return self

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def n_trials(self) -> int:
        return (len(self.datasets) * len(self.embedders) * len(self.initial_pools)
                * len(self.strategies) * len(self.seeds))


FROM_LEARNER = frozenset({Need.PROBABILITIES, Need.HEAD})
"""Strategy inputs that come from the learner (``LearnerKind.provides`` says which it gives)."""

EXPERIMENT_NAME_LIMIT = 500
"""The longest experiment name MLflow stores (its ``experiments.name`` column)."""

PROBLEMS = "\n"
"""Joins the problems one validator finds; each starts with its path relative to the field
(``[2].params.k: ...``) or, for whole-config checks, from the root (``datasets[1]: ...``)."""


def _resolve_all(specs: list[StrategySpec], registry) -> list[StrategySpec]:
    """Every spec resolved; one ValueError with every entry's problems otherwise."""
    resolved, problems = [], []
    for index, spec in enumerate(specs):
        try:
            resolved.append(_resolve(spec, registry, index))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError(PROBLEMS.join(problems))
    return resolved


def _resolve(spec: StrategySpec, registry, index: int) -> StrategySpec:
    """Check the name and parameters against the registered class.

    Only parameters that differ from the defaults are kept, so ``badge`` and
    ``badge(first=max_norm)`` are the same trial (same label, same trial key).
    """
    from dataclasses import asdict

    from strategies import StrategyParamError, UnknownNameError

    try:
        instance = registry.create(spec.name, spec.params)
    except UnknownNameError as exc:
        raise ValueError(f"[{index}].name: {exc}") from None
    except StrategyParamError as exc:
        raise ValueError(PROBLEMS.join(f"[{index}].params.{param}: {message} ({registry.role} {spec.name!r})"
                                       for param, message in exc.problems)) from None
    defaults = asdict(type(instance)())
    given = {k: v for k, v in asdict(instance).items() if v != defaults[k]}
    return StrategySpec(name=spec.name, params=given)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem, each naming the field's full path and the fix."""
    found = []
    for error in exc.errors():
        path, previous = "", None
        for part in error["loc"]:
            if (previous == "learner" and part in LEARNERS) or (previous == "source" and part in SOURCES):
                previous = part
                continue  # the member of a tagged union pydantic tried: not a field of the config
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
            previous = part
        if error["type"] == "extra_forbidden":
            found.append((path, "unknown field; remove it or check its spelling (see `albench schema`)"))
            continue
        if error["type"] == "missing":
            found.append((path, "required field is missing; add it (see `albench schema`)"))
            continue
        for message in error["msg"].removeprefix("Value error, ").split(PROBLEMS):
            found.append(_locate(path, message))
    lines = [f"{source}: {len(found)} problem(s) in the config"]
    lines.extend(f"  {path or '<root>'}: {message}" for path, message in found)
    return "\n".join(lines)


_RELATIVE = re.compile(r"^(\[\d+\][\w.\[\]]*): (.*)$", re.DOTALL)
_FROM_ROOT = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[\w]+)*): (.*)$", re.DOTALL)


def _locate(path: str, message: str) -> tuple[str, str]:
    """A validator's message that names where inside ``path`` (or, at the root, which field)."""
    if path and (match := _RELATIVE.match(message)):
        return path + match.group(1), match.group(2)
    if not path and (match := _FROM_ROOT.match(message)):
        return match.group(1), match.group(2)
    return path, message


def parse_config(data: Any, source: str = "config") -> ExperimentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping with name, datasets, ...")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML config file; its relative paths are relative to its folder."""
    from orchestrator.paths import resolve_paths

    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file; fix: name the YAML file in it "
                          "(e.g. experiments.yaml)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}); fix: name a readable "
                          "YAML config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text (byte {exc.start} cannot be decoded): not a "
                          "YAML config; fix: name the YAML config file (see `albench schema`)") from None
    if "\0" in text:
        raise ConfigError(f"{path}: holds NUL bytes (binary data): not a YAML config; fix: name the "
                          "YAML config file (see `albench schema`)")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return resolve_paths(parse_config(data, str(path)), path.parent)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (YAML itself keeps the
    last silently: a second ``seeds:`` would replace the first without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader says so itself
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first.line + 1}, again on "
                    f"line {key_node.start_mark.line + 1}); fix: keep one of the two (YAML would "
                    "silently keep the last)", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def config_schema() -> dict:
    """JSON schema of the config, with the registered strategies (and their parameters) and
    every registered thing of each kind, by entry-point group, with where it comes from."""
    from pydantic import TypeAdapter

    from orchestrator import plugins

    schema = ExperimentConfig.model_json_schema()
    for key, registry in (("x-query-strategies", QUERY_STRATEGIES), ("x-initial-pools", INITIAL_POOLS)):
        schema[key] = {
            name: {"description": (cls.__doc__ or "").strip().split("\n")[0],
                   "params": TypeAdapter(cls).json_schema().get("properties", {})}
            for name, cls in registry.items()
        }
    schema["x-plugins"] = plugins.listing()
    schema["x-plugin-problems"] = plugins.problems()
    return schema
