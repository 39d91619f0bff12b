"""Compare two tracking stores of the same grid: the same trial keys, identical curves?

    python bench/compare_runs.py sqlite:///before.db sqlite:///after.db [EXPERIMENT]

Reads both stores in bulk (one run per trial key, its curves), then prints the trial keys found
in only one of them and, for keys in both, whether the learning curves (accuracy and macro-F1
at every step) and the summary metrics derived from them are identical, float for float. Timing
metrics (query and fit seconds) are compared by their steps only. Exit code 0 when everything
matches, 1 otherwise. EXPERIMENT defaults to the default grid's (``albench-default``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # a checkout without install, any folder

EXACT = ("accuracy", "macro_f1")
TIMINGS = ("query_seconds", "fit_seconds")
SUMMARY = ("auc_accuracy", "auc_macro_f1", "final_accuracy", "final_macro_f1")


def read(uri: str, experiment: str):
    from orchestrator.tracking import open_tracker

    tracker = open_tracker(uri, experiment)
    runs = tracker.trial_runs()
    ids = [run.run_id for run in runs.values()]
    curves = tracker.curves(ids, (*EXACT, *TIMINGS))
    return {key: (run, curves[run.run_id]) for key, run in runs.items()}


def compare(before: dict, after: dict) -> list[str]:
    problems = []
    for key in sorted(set(before) - set(after)):
        problems.append(f"{key}: only in the first store")
    for key in sorted(set(after) - set(before)):
        problems.append(f"{key}: only in the second store")
    for key in sorted(set(before) & set(after)):
        (run_a, curves_a), (run_b, curves_b) = before[key], after[key]
        if run_a.status != run_b.status:
            problems.append(f"{key}: status {run_a.status} vs {run_b.status}")
        for metric in EXACT:
            if curves_a[metric] != curves_b[metric]:
                problems.append(f"{key}: {metric} curves differ: {curves_a[metric]} vs {curves_b[metric]}")
        for metric in TIMINGS:
            if [s for s, _ in curves_a[metric]] != [s for s, _ in curves_b[metric]]:
                problems.append(f"{key}: {metric} logged at other steps")
        for metric in SUMMARY:
            if run_a.metrics.get(metric) != run_b.metrics.get(metric):
                problems.append(f"{key}: {metric} {run_a.metrics.get(metric)} vs {run_b.metrics.get(metric)}")
    return problems


def main(first: str, second: str, experiment: str = "albench-default") -> int:
    before, after = read(first, experiment), read(second, experiment)
    problems = compare(before, after)
    common = len(set(before) & set(after))
    points = sum(len(curves[m]) for _, curves in before.values() for m in EXACT)
    print(f"first:  {len(before)} trial keys ({first})")
    print(f"second: {len(after)} trial keys ({second})")
    print(f"in both: {common}; {points} curve points compared in the first store")
    for problem in problems[:50]:
        print(f"  {problem}")
    if len(problems) > 50:
        print(f"  ... and {len(problems) - 50} more")
    print("identical: same trial keys, same curves and summaries" if not problems
          else f"DIFFERENT: {len(problems)} problems")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
