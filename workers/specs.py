"""Specs that travel from the driver to the workers: embedders, protocol, learner, trials.

They are pydantic v2 models (``extra="forbid"``, every field documented) so the orchestrator's
config embeds them as they are, and the JSON schema of the config documents them. The dataset
specs (``DatasetSpec``, ``Subsample`` and one source spec per source) live with their sources
in ``workers.datasets``; importing them from here still works (they are looked up there).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from workers.hashing import content_hash

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=80,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Identifier: letters, digits, '_', '-', '.'.",
    ),
]


class Spec(BaseModel):
    """Base of all specs: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------- embedders


ATTENTION_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")


class ModelKwargs(Spec):
    """What albench passes to transformers when it loads a model (a whitelist, nothing else)."""

    dtype: Literal["float32", "float16", "bfloat16"] | None = Field(
        None, description="Weights dtype (the same as precision; give one)."
    )
    attn_implementation: Literal["sdpa", "flash_attention_2", "eager"] | None = Field(
        None, description="Attention kernel: sdpa, flash_attention_2 (where installed) or eager."
    )


class RuntimeEnvSpec(Spec):
    """A Ray runtime_env for one embedder: pip requirements and environment variables only
    (a config never names code to run)."""

    pip: list[Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~ ]*$")]] = Field(
        default_factory=list, description="pip requirements ('pkg==1.2'), installed by Ray.")
    env_vars: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict, description="Environment variables of the embedder's actors.")

    def ray(self) -> dict:
        """The dict Ray's ``runtime_env`` takes."""
        out: dict = {}
        if self.pip:
            out["pip"] = list(self.pip)
        if self.env_vars:
            out["env_vars"] = dict(self.env_vars)
        return out


class EmbedderSpec(Spec):
    """A frozen text embedder: a built-in name, a sentence-transformers hub id or a local path."""

    name: Name = Field(description="Name used in reports, MLflow and the store path.")
    model: str = Field(
        description=(
            "A built-in embedder name (see the README), a sentence-transformers hub id "
            "('org/model'), or a path to a local sentence-transformers folder."
        )
    )
    revision: str | None = Field(None, description="Hub revision for hub ids (commit hash best).")
    batch_size: int = Field(64, ge=1, le=65536, description="Texts per encode batch.")
    max_seq_length: int | None = Field(
        256, ge=8, description="Truncate inputs to this many tokens (None: the model's own)."
    )
    normalize: bool = Field(True, description="L2-normalise every embedding.")
    query_prompt: str | None = Field(
        None, description="Instruction/prefix prepended to every text (e.g. 'query: ' for E5)."
    )
    instruction: str | None = Field(
        None, description="Instruction prepended to every text (the same as query_prompt; give one)."
    )
    prompt_name: str | None = Field(
        None, description="A named prompt of the model's own config (config_sentence_transformers.json)."
    )
    pooling: Literal["mean", "cls", "lasttoken"] | None = Field(
        None, description="Pooling for a folder that defines none (a folder's own pooling wins; "
        "a different value is an error)."
    )
    padding_side: Literal["left", "right"] | None = Field(
        None, description="Tokenizer padding side (decoder embedders with last-token pooling: left)."
    )
    model_kwargs: ModelKwargs = Field(
        default_factory=lambda: ModelKwargs(), description="Options passed when loading the model."
    )
    trust_remote_code: bool = Field(
        False, description="Run the model repository's own Python code (off by default; turning it "
        "on warns and is recorded in the store metadata)."
    )
    runtime_env: RuntimeEnvSpec | None = Field(
        None, description="An isolated Ray environment for this embedder's actors (pip pins, "
        "environment variables)."
    )
    precision: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Compute precision: auto = bfloat16 on GPUs that support it, float16 "
        "on older ones, float32 on CPU."
    )
    store_dtype: Literal["float32", "float16"] = Field(
        "float32", description="Element type of the embeddings in the Parquet store."
    )
    dim: int | None = Field(
        None, ge=2, description="Output size for built-ins that have one (tfidf-svd components)."
    )

    @model_validator(mode="after")
    def _one_prompt(self) -> EmbedderSpec:
        given = [f for f in ("instruction", "query_prompt", "prompt_name") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} are given; give one of instruction, query_prompt "
                             "or prompt_name")
        dtype = self.model_kwargs.dtype
        if dtype is not None and self.precision != "auto" and dtype != self.precision:
            raise ValueError(f"model_kwargs.dtype {dtype!r} contradicts precision {self.precision!r}; "
                             "give one of them")
        return self

    @property
    def prompt(self) -> str | None:
        """The literal text prepended to every input (instruction or query_prompt)."""
        return self.instruction if self.instruction is not None else self.query_prompt

    @property
    def wanted_precision(self) -> str:
        """precision, or model_kwargs.dtype when precision is auto."""
        if self.precision == "auto" and self.model_kwargs.dtype is not None:
            return self.model_kwargs.dtype
        return self.precision


# ------------------------------------------------------------------------- protocol/learner


class StrategySpec(Spec):
    """A query strategy or initial-pool selector by registered name, with its parameters."""

    name: str = Field(description="Registered name (see `albench schema` or the README).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Hyper-parameters of the strategy (validated)."
    )

    @property
    def label(self) -> str:
        """Name plus parameters, unique within a grid (e.g. 'badge' or 'typiclust(k=10)')."""
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={self.params[k]}" for k in sorted(self.params))
        return f"{self.name}({inner})"


class ValidationSpec(Spec):
    """A labelled validation split drawn from the pool by the trial's seed, for model selection
    (the learner's C); metrics stay on the test split."""

    size: int | None = Field(None, ge=2, description="Rows in the validation split.")
    fraction: float | None = Field(None, gt=0, lt=0.5, description="Or a share of the pool.")
    counts_against_budget: bool = Field(
        True, description="Its rows count as labelled (the x axis includes them).")

    @model_validator(mode="after")
    def _size_or_fraction(self) -> ValidationSpec:
        if (self.size is None) == (self.fraction is None):
            raise ValueError("give protocol.validation.size or protocol.validation.fraction (one)")
        return self

    def rows(self, pool_size: int) -> int:
        return self.size if self.size is not None else max(2, round(self.fraction * pool_size))


class ProtocolSpec(Spec):
    """The active-learning protocol shared by every trial of a grid."""

    initial_pool_size: int = Field(
        20, ge=1, description="Rows labelled before the first query (chosen by the initial pool)."
    )
    query_size: int = Field(20, ge=1, description="Rows labelled per query cycle (batch size B).")
    cycles: int | None = Field(
        None, ge=1, description="Number of query cycles. Give this or budget, not both."
    )
    budget: int | None = Field(
        None, ge=1, description="Total labelled rows at the end, initial pool included."
    )
    validation: ValidationSpec | None = Field(
        None, description="Optional labelled validation split for model selection (size or fraction)."
    )

    @model_validator(mode="after")
    def _cycles_or_budget(self) -> ProtocolSpec:
        if self.cycles is None and self.budget is None:
            raise ValueError("give either protocol.cycles or protocol.budget")
        if self.cycles is not None and self.budget is not None:
            raise ValueError("give protocol.cycles or protocol.budget, not both")
        if self.budget is not None:
            extra = self.budget - self.initial_pool_size
            if extra < 0 or extra % self.query_size:
                raise ValueError(
                    f"protocol.budget ({self.budget}) minus initial_pool_size "
                    f"({self.initial_pool_size}) must be a non-negative multiple of query_size "
                    f"({self.query_size}); e.g. budget: "
                    f"{self.initial_pool_size + self.query_size * max(1, extra // self.query_size)}"
                )
        return self

    @property
    def n_cycles(self) -> int:
        if self.cycles is not None:
            return self.cycles
        return (self.budget - self.initial_pool_size) // self.query_size

    @property
    def final_labelled(self) -> int:
        return self.initial_pool_size + self.n_cycles * self.query_size


class LogisticRegressionSpec(Spec):
    """Multinomial logistic regression on the frozen embeddings, retrained every cycle.

    The default (``C: auto``) chooses its regularisation from the labelled rows alone: every C
    of ``C_grid`` fitted to convergence on folds of the labelled rows (a class labelled once stays
    in training) or on the validation split when ``protocol.validation`` is set, the C with the
    lowest held-out Brier score winning (never one that predicts a single class); searched on the first cycle and again whenever the labelled
    rows have grown by ``search_growth`` (measured in bench/learner.py; see the README).
    ``C: <number>`` is the study's fixed head, scikit-learn's ``LogisticRegression(C)``;
    ``C: 1.0`` is exactly the learner of albench before (result version 1).
    """

    type: Literal["logistic_regression"] = Field(
        "logistic_regression", description="The learner: the study's linear head."
    )
    C: float | Literal["auto"] = Field(
        "auto", description="Inverse L2 regularisation: a positive number, or auto (chosen from the "
        "labelled rows, never from the test split; logged per cycle as the metric learner_C).")
    C_grid: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0), min_length=2,
        description="Candidates of C: auto (fitted in ascending order; the larger ones are skipped "
        "once the held-out score has risen at two successive candidates).")
    cv_folds: int = Field(5, ge=2, le=10, description="Cross-validation folds of C: auto (3 from 100 "
                          "labelled rows on).")
    search_growth: float = Field(
        2.0, ge=1.0, description="C: auto searches again once the labelled rows have grown by this "
        "factor since the last search (1: every cycle).")
    standardize: bool = Field(
        False, description="Standardise features with the pool's mean and std (no labels). Off by "
        "default: it hurts TF-IDF + SVD features (measured), and embeddings are L2-normalised.")
    max_iter: int = Field(500, ge=10, description="L-BFGS iteration cap of a fixed C (scikit-learn's).")
    tol: float = Field(1e-4, gt=0, description="L-BFGS tolerance of a fixed C (scikit-learn's); C: auto "
                       "fits every model to a far tighter one of its own.")
    class_weight: Literal["balanced"] | None = Field(
        None, description="'balanced' reweights classes by inverse labelled frequency."
    )

    @field_validator("C")
    @classmethod
    def _c_positive(cls, value):
        if value != "auto" and value <= 0:
            raise ValueError("C must be a positive number or auto")
        return value

    @property
    def tuned(self) -> bool:
        return self.C == "auto"

    @property
    def standardized(self) -> bool:
        return self.standardize


class MLPSpec(Spec):
    """A small MLP head on the frozen embeddings (scikit-learn, CPU, seeded by the trial): a
    check that a finding is not an artefact of the linear head. Strategies that need a linear
    head (dropquery, alfamix) do not take it."""

    type: Literal["mlp"] = Field("mlp", description="The learner: one hidden ReLU layer.")
    hidden: int = Field(256, ge=2, le=8192, description="Hidden units.")
    alpha: float = Field(1e-3, ge=0, description="L2 penalty.")
    max_iter: int = Field(300, ge=10, description="Adam epochs at most.")
    standardize: bool = Field(True, description="Standardise features with the pool's statistics.")

    @property
    def standardized(self) -> bool:
        return self.standardize


def _learner_type(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("type", "logistic_regression")
    return getattr(value, "type", "logistic_regression")


LearnerSpec = Annotated[
    Annotated[LogisticRegressionSpec, Tag("logistic_regression")] | Annotated[MLPSpec, Tag("mlp")],
    Discriminator(_learner_type),
]
"""The learner of a grid: ``type: logistic_regression`` (default) or ``type: mlp``."""


# ------------------------------------------------------------------------------------ trials


class TrialSpec(Spec):
    """One seeded active-learning trajectory: everything that determines its learning curve."""

    dataset: str = Field(description="Dataset name (for display; the fingerprint identifies it).")
    embedder: str = Field(description="Embedder name (for display; embedding_key identifies it).")
    dataset_fingerprint: str = Field(description="Content hash of the dataset and its split.")
    embedding_key: str = Field(description="Store key of the embeddings (embedder x dataset).")
    n_classes: int = Field(ge=2, description="Number of classes of the task.")
    initial_pool: StrategySpec = Field(description="Initial-pool selector, parameters resolved.")
    strategy: StrategySpec = Field(description="Query strategy, parameters resolved.")
    seed: int = Field(ge=0, description="The trial's seed; every random choice derives from it.")
    protocol: ProtocolSpec
    learner: LearnerSpec
    device: str = Field("cpu", description="Where strategy kernels run (cpu or cuda).")

    def key_payload(self) -> dict[str, Any]:
        """What the trial key hashes: everything that changes the curve, no display names."""
        payload = self.model_dump(mode="json", exclude={"dataset", "embedder", "device"})
        payload["result_version"] = RESULT_VERSION
        return payload

    @property
    def trial_key(self) -> str:
        return stable_hash(self.key_payload())[:24]


RESULT_VERSION = 3
"""Bump when a change to albench alters curves, so old results are not taken as current.
2: the default learner chooses C per cycle on standardised features (was: C = 1 on raw ones).
3: C: auto's candidates are converged models, scored by the held-out Brier score on folds that
   keep rare classes (was: L-BFGS stopped at once after the first C, the largest C on ties)."""


def stable_hash(payload: Any) -> str:
    """sha256 hex of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    return content_hash(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str))

