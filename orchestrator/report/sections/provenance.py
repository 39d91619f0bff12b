"""Provenance: the config, albench and library versions, trial counts, store keys, the date."""

from __future__ import annotations

import datetime
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import pandas as pd
import yaml

from orchestrator.report.page import Section, esc, table, words
from orchestrator.tracking.base import masked

NAME = "provenance"
AFTER = "cost"
TITLE = "Provenance"
PACKAGES = ("albench", "numpy", "scipy", "pandas", "scikit-learn", "torch", "sentence-transformers", "ray",
            "mlflow", "pyarrow", "matplotlib", "plotly")


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def build(context) -> Section:
    from workers.specs import RESULT_VERSION

    config, data = context.config, context.data
    now = context.meta.get("date") or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    found = versions()
    keys = pd.DataFrame([{"dataset": j.dataset_name, "embedder": j.embedder.name, "embedding_key": j.key,
                          "dataset_fingerprint": j.dataset_fingerprint[:16]} for j in context.jobs])
    if keys.empty and not data.trials.empty and "embedding_key" in data.trials:
        keys = data.trials[["dataset", "embedder", "embedding_key"]].drop_duplicates()
    counts = data.trials["status"].value_counts().rename_axis("status").reset_index(name="trials") \
        if not data.trials.empty else pd.DataFrame()
    chosen = learner_choices(data.curves)
    dumped = masked(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    info = {"date": now, "experiment": config.experiment_name, "tracking_uri": context.meta.get("tracking_uri"),
            "result_version": RESULT_VERSION, "trials": len(data.trials), "versions": found,
            "mlflow_calls": context.meta.get("mlflow_calls")}
    body = (words(f"Built {esc(now)} from experiment <b>{esc(config.experiment_name)}</b> at "
                  f"<code>{esc(context.meta.get('tracking_uri', ''))}</code>, result version {RESULT_VERSION}; "
                  f"{len(data.trials)} trials in the grid.")
            + table(counts, caption="trials by status")
            + table(pd.DataFrame([found]).T.reset_index().set_axis(["package", "version"], axis=1),
                    caption="versions")
            + table(keys, caption="store keys")
            + (table(chosen, caption="the learner's C per (dataset, embedder): over every cycle of every "
                     "trial (metric learner_C); searched: the share of cycles that searched C, the others "
                     "reused the last search's C") if not chosen.empty else "")
            + f"<details><summary>config</summary><pre>{esc(dumped)}</pre></details>")
    return Section(NAME, TITLE, body, {**info, "store_keys": keys, "counts": counts, "config": dumped,
                                               "learner_C": chosen})


def learner_choices(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, embedder): the C the learner used (median, range, the most frequent) and
    the share of cycles that searched it; empty where no run logged ``learner_C``."""
    if curves.empty or "learner_C" not in curves or curves["learner_C"].isna().all():
        return pd.DataFrame()
    used = curves.dropna(subset=["learner_C"])
    grouped = used.groupby(["dataset", "embedder"], sort=True)
    return pd.DataFrame({
        "cycles": grouped.size(),
        "median C": grouped["learner_C"].median(),
        "min C": grouped["learner_C"].min(),
        "max C": grouped["learner_C"].max(),
        "most used C": grouped["learner_C"].agg(lambda c: c.mode().iloc[0]),
        "searched": grouped["learner_searched"].mean().round(3) if "learner_searched" in used else float("nan"),
    }).reset_index()
