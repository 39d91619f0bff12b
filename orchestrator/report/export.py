"""The report's data files, typed and described: ``results.parquet`` and ``curves.parquet`` with
numbers as numbers and missing values as null, and beside them ``schema.json`` (every column:
its type and meaning) and ``README.md`` (the same as a table). ``docs/report-data.md`` is the
page of the docs; ``DICTIONARY`` is the one home of the words.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from workers.files import atomic_write
from workers.trajectory import CYCLE_METRICS

LAST_CYCLE = "last_cycle."
"""MLflow's latest value of a per-cycle metric, in ``results.parquet``: the last cycle's value."""

DICTIONARY: list[tuple[str, str, str]] = [
    # (column or pattern, files, meaning)
    ("trial_key", "both", "the trial's key: a hash of everything that defines it (tag albench.trial_key)"),
    ("dataset", "both", "the dataset's name in the config"),
    ("embedder", "both", "the embedder's name in the config"),
    ("initial_pool", "both", "the initial-pool selector's label (random, typiclust, ...)"),
    ("strategy", "both", "the query strategy's label"),
    ("seed", "both", "the trial's seed (one trial per seed per cell)"),
    ("embedding_key", "results", "the embedding store key the trial read"),
    ("status", "results", "FINISHED, FAILED, RUNNING, KILLED or MISSING (no run yet)"),
    ("run_id", "results", "the trial's MLflow run id (null when MISSING)"),
    ("param.*", "results", ("the trial's MLflow params (protocol, learner, strategy parameters), typed: "
                           "numbers as numbers, true/false as booleans, 'None' as null, the rest text")),
    ("auc_accuracy, auc_macro_f1", "results", ("full AUC of the curve: trapezoid area over labelled "
                                              "examples divided by their range (workers.metrics.normalized_auc)")),
    ("early_auc_*, late_auc_*", "results", "the same AUC over the first / last report.early_cycles points"),
    ("final_accuracy, final_macro_f1", "results", "the metric at the last cycle"),
    ("total_query_seconds", "results", "seconds spent in the strategy's queries, the initial pool included"),
    ("strategy_query_seconds", "results", "seconds spent in the strategy's queries after the initial pool"),
    ("initial_pool_seconds", "results", "seconds the initial pool's selection took (cycle 0)"),
    ("total_fit_seconds", "results", "seconds the learner spent fitting, over every cycle"),
    ("single_class_cycles", "results", "cycles in which the learner predicted one class for every test row"),
    (f"{LAST_CYCLE}*", "results", ("the last cycle's value of a per-cycle metric (MLflow's latest value): "
                                  "not a summary of the curve")),
    ("step", "curves", "labelled examples at this cycle (the x of a learning curve)"),
    ("accuracy, macro_f1", "curves", "test accuracy and macro-F1 at this cycle"),
    ("query_seconds, fit_seconds", "curves", "seconds of this cycle's query and fit"),
    ("predicted_classes", "curves", "distinct classes the learner predicted on the test split"),
    ("warnings", "curves", "unexpected warnings counted in this cycle"),
    ("learner_C, learner_searched", "curves", "the learner's C at this cycle, and 1 where it searched C"),
]


def _patterns(name: str) -> list[str]:
    return [p.strip() for p in name.split(",")]


def meaning(column: str, file: str) -> str | None:
    """The dictionary's words for ``column`` of ``file`` ("results" or "curves"), or None."""
    for name, files, words in DICTIONARY:
        if files in ("both", file) and any(re.fullmatch(re.escape(p).replace(r"\*", ".*"), column)
                                           for p in _patterns(name)):
            return words
    return None


def _value(text):
    """One param value as the type it reads as."""
    if text is None or (isinstance(text, float) and pd.isna(text)) or text in ("None", "null", ""):
        return None
    if not isinstance(text, str):
        return text
    if text in ("True", "true", "False", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def typed(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """``frame`` with each text column as the type its values read as (a column of numbers and
    nulls: numbers; of true/false: booleans; otherwise text), missing values null, and in
    ``results`` the last-cycle columns named as such."""
    frame = frame.copy()
    if file == "results":
        frame = frame.rename(columns={m: f"{LAST_CYCLE}{m}" for m in CYCLE_METRICS if m in frame})
    for column in frame.columns:
        if not (frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column])):
            continue
        values = [_value(v) for v in frame[column]]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            frame[column] = pd.array(values, dtype="boolean")
        elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            kind = "Int64" if all(isinstance(v, int) for v in present) else "Float64"
            frame[column] = pd.array(values, dtype=kind)
        else:
            frame[column] = pd.array([None if v is None else str(o) for o, v in zip(frame[column], values)],
                                     dtype="string")
    return frame


def schema(frames: dict[str, pd.DataFrame]) -> dict:
    """Every column of every file: its type and meaning."""
    return {f"{file}.parquet": [{"column": c, "type": str(frame[c].dtype), "meaning": meaning(c, file)}
                                for c in frame.columns] for file, frame in frames.items()}


def write(out: Path, trials: pd.DataFrame, curves: pd.DataFrame) -> None:
    """``results.parquet``, ``curves.parquet``, ``schema.json`` and ``README.md`` into ``out``."""
    frames = {"results": typed(trials, "results"), "curves": typed(curves, "curves")}
    for file, frame in frames.items():
        with atomic_write(out / f"{file}.parquet") as temporary:
            frame.to_parquet(temporary, index=False)
    found = schema(frames)
    with atomic_write(out / "schema.json") as temporary:
        temporary.write_text(json.dumps(found, indent=1))
    lines = ["# The report's data files", "",
             "Typed: numbers are numbers, missing values are null. See docs/report-data.md in albench.", ""]
    for file, columns in found.items():
        lines += [f"## {file}", "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c['column']}` | {c['type']} | {c['meaning'] or ''} |" for c in columns]
        lines.append("")
    lines += ["## stats.json", "", "Every section's statistics, keyed by section name (see docs/report-data.md).",
              "", "## quality.json", "", ("The cached quality measurements, keyed by "
              "`dataset / embedder / store key / learner / result version / measures version`."), ""]
    with atomic_write(out / "README.md") as temporary:
        temporary.write_text("\n".join(lines))
