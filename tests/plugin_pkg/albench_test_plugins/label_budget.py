"""A report section: how many trials of each strategy finished, at the end of the report."""

from __future__ import annotations

from orchestrator.report.page import Section, esc, words


class LabelBudget:
    """Finished trials per strategy, in one sentence."""

    TITLE = "Finished trials per strategy (a plug-in's section)"
    ORDER = 100

    @staticmethod
    def build(context) -> Section:
        trials = context.data.trials
        done = trials[trials["status"] == "FINISHED"] if not trials.empty else trials
        counts = done.groupby("strategy").size().to_dict() if not done.empty else {}
        text = ", ".join(f"{esc(name)}: {n}" for name, n in sorted(counts.items())) or "none yet"
        return Section("label_budget", LabelBudget.TITLE, words(f"Finished trials: {text}."),
                       {"finished": {str(k): int(v) for k, v in counts.items()}})
