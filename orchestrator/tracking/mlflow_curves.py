"""Reading learning curves from MLflow in bulk: SQL stores one query per metric and 500 runs, a
server one request per metric and 100 runs (its bulk history endpoint, the one its UI charts
use), other stores one call per run and metric."""

from __future__ import annotations

from orchestrator.tracking.base import Curve

CURVE_RUNS_PER_QUERY = 500
"""Runs per bulk metric-history query (SQL stores): well inside SQLite's variable limit."""
SERVER_BULK_HISTORY = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
SERVER_RUNS_PER_QUERY = 100
SERVER_POINTS_PER_QUERY = 25000
"""The server's limits on that endpoint: 100 run ids, 25,000 points per request."""


def read_curves(tracker, run_ids: list[str], metrics: list[str]) -> dict[str, dict[str, Curve]]:
    """run id -> metric -> points. SQL stores answer one query per metric and 500 runs, a
    server one request per metric and 100 runs; other stores one call per run and metric."""
    result: dict[str, dict[str, Curve]] = {run_id: {m: [] for m in metrics} for run_id in run_ids}
    if not run_ids:
        return result
    bulk = getattr(tracker.store, "get_metric_history_bulk", None)
    if bulk is None and hasattr(tracker.store, "get_host_creds"):  # a server: its bulk endpoint
        _server_curves(tracker, run_ids, metrics, result)
    elif bulk is None:
        for run_id in run_ids:
            for metric in metrics:
                result[run_id][metric] = tracker.curve(run_id, metric)
        return result
    else:
        bulk = tracker.client.retrying(bulk)
        for start in range(0, len(run_ids), CURVE_RUNS_PER_QUERY):
            chunk = run_ids[start : start + CURVE_RUNS_PER_QUERY]
            for metric in metrics:
                for row in bulk(chunk, metric, max_results=2**62):
                    result[row.run_id][metric].append((row.step, row.value))
    for per_metric in result.values():
        for points in per_metric.values():
            points.sort()
    return result


def _server_curves(tracker, run_ids: list[str], metrics: list[str], result: dict) -> None:
    """Curves from an MLflow server's bulk history endpoint (the one its UI charts use):
    one request per metric and ``SERVER_RUNS_PER_QUERY`` runs, not one per run and metric.
    The server returns at most ``SERVER_POINTS_PER_QUERY`` points a request: a full answer
    may be cut short, so its runs are asked again in halves (one run alone: page by page)."""
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    def ask(chunk: list[str], metric: str) -> None:
        with tracker.counting_call("get_metric_history_bulk"):
            response = http_request(tracker.store.get_host_creds(), SERVER_BULK_HISTORY, "GET",
                                    params={"run_id": chunk, "metric_key": metric,
                                            "max_results": SERVER_POINTS_PER_QUERY})
        verify_rest_response(response, SERVER_BULK_HISTORY)
        rows = response.json().get("metrics", [])
        if len(rows) < SERVER_POINTS_PER_QUERY:
            for row in rows:
                result[row["run_id"]][metric].append((int(row.get("step", 0)), float(row["value"])))
        elif len(chunk) > 1:
            ask(chunk[: len(chunk) // 2], metric)
            ask(chunk[len(chunk) // 2 :], metric)
        else:
            result[chunk[0]][metric] = tracker.curve(chunk[0], metric)

    for start in range(0, len(run_ids), SERVER_RUNS_PER_QUERY):
        for metric in metrics:
            ask(run_ids[start : start + SERVER_RUNS_PER_QUERY], metric)
