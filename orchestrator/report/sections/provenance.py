"""8. Provenance: the config, albench and library versions, trial counts, store keys, the date."""

from __future__ import annotations

import datetime
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import pandas as pd
import yaml

from orchestrator.report.page import Section, esc, table, words
from orchestrator.tracking.base import masked

ORDER = 8
TITLE = "8. Provenance"
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
            + f"<details><summary>config</summary><pre>{esc(dumped)}</pre></details>")
    return Section("provenance", TITLE, body, {**info, "store_keys": keys, "counts": counts, "config": dumped})
