"""The plain-REST write path to an MLflow server (``orchestrator/tracking/mlflow_rest.py``):
against a real server it records what MLflow's client records; its retries, errors and
keep-alive handling against a small HTTP server that answers as told."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow.exceptions import MlflowException, RestException
from mlflow.utils.rest_utils import MlflowHostCreds

from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.tracking import open_tracker
from orchestrator.tracking.base import RunRef, RunWrite
from orchestrator.tracking.mlflow_rest import RestRuns, for_store
from tests.conftest import tiny_config
from tests.test_tracking_writes import _seen, _writes


@pytest.fixture
def no_proxy(monkeypatch):
    """The loopback server bypasses any proxy the machine's environment names (CI may set one)."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


def test_rest_writes_record_what_mlflows_client_records(corpus, tmp_path, mlflow_server_postgres, no_proxy):
    plan = prepare_plan(parse_config(tiny_config(corpus, tmp_path)))
    trial = plan.trials[0]
    lean = open_tracker(mlflow_server_postgres.uri, "rest-lean")
    client = open_tracker(mlflow_server_postgres.uri, "rest-client")
    assert lean.rest is not None and not lean.bulk  # a server: the plain REST path
    client.rest = None  # MLflow's client, call by call
    seen, calls = {}, {}
    for name, tracker in (("lean", lean), ("client", client)):
        ref, saved = RunRef(), []
        tracker.parent_run(trial.dataset, trial.embedder)  # its calls are not the trial's
        before = tracker.calls
        for flush in _writes(trial, ref, saved):
            tracker.apply(flush)
        calls[name] = tracker.calls - before
        assert saved == [1, 2, 3]
        seen[name] = _seen(tracker, ref.run_id)
        seen[name]["artifact_tail"] = seen[name]["artifact_tail"][1]
    assert seen["lean"] == seen["client"]
    assert seen["lean"]["histories"]["macro_f1"][0][2] is None  # NaN arrived as NaN
    assert seen["lean"]["status"] == "FINISHED" and seen["lean"]["end"] == 3000
    assert calls == {"lean": 6, "client": 6}, calls  # create, 3 batches, end, the parent's end moved to it


def test_a_large_batch_is_cut_at_mlflows_limits(corpus, tmp_path, mlflow_server_postgres):
    plan = prepare_plan(parse_config(tiny_config(corpus, tmp_path)))
    tracker = open_tracker(mlflow_server_postgres.uri, "rest-limits")
    params = {f"p{i:03d}": str(i) for i in range(150)}
    tags = {f"t{i:03d}": "v" for i in range(120)}
    metrics = [("accuracy", i / 2500, i) for i in range(2500)]
    ref = RunRef()
    tracker.parent_run(plan.trials[0].dataset, plan.trials[0].embedder)
    before = tracker.calls
    tracker.apply([RunWrite(ref, plan.trials[0], create={}, params=params, tags=tags, metrics=metrics,
                            timestamp=5, end="FINISHED")])
    assert tracker.calls - before == 1 + 3 + 1 + 1  # 270 params and tags, 2500 points: 3 batches; the parent's end
    run = tracker.client.get_run(ref.run_id)
    assert {k: v for k, v in run.data.params.items() if k in params} == params
    assert set(tags) <= set(run.data.tags)
    assert tracker.curve(ref.run_id) == [(i, i / 2500) for i in range(2500)]


class _Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next (status, body, close) of the server's ``script``."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # http.server calls it by this name
        self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        with server.lock:
            server.requests.append((self.path, self.client_address[1], self.headers.get("Authorization")))
            status, body, close = server.script.pop(0) if server.script else (200, {}, False)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = close  # closed without saying so: the client must notice

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.lock, server.requests, server.script = threading.Lock(), [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _runs(server, **creds) -> RestRuns:
    counted = []
    runs = RestRuns(MlflowHostCreds(f"http://127.0.0.1:{server.server_address[1]}", **creds), counted.append)
    runs.backoff = 0
    return runs


def test_transient_answers_are_retried_and_errors_raised(scripted):
    created = {"run": {"info": {"run_id": "r1"}}}
    scripted.script = [(503, {}, False), (429, {}, False), (200, created, False)]
    runs = _runs(scripted, token="secret")
    assert runs.create_run("1", 7, "name", {"k": "v"}) == "r1"
    assert [path for path, _, _ in scripted.requests] == ["/api/2.0/mlflow/runs/create"] * 3
    assert scripted.requests[0][2] == "Bearer secret"
    scripted.script = [(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad key"}, False)]
    with pytest.raises(RestException, match="bad key"):  # not transient: raised at once
        runs.update_run("r1", "FINISHED", 9)
    scripted.script = [(502, {}, False)] * 3
    runs.retries = 2
    with pytest.raises(MlflowException, match="502"):
        runs.delete_tag("r1", "k")
    assert len(scripted.requests) == 3 + 1 + 3


def test_a_connection_the_server_closed_is_opened_again(scripted):
    scripted.script = [(200, {}, True), (200, {}, False), (200, {}, False)]
    runs = _runs(scripted, username="u", password="p")
    runs.update_run("r", "RUNNING")  # the server closes this connection after answering
    threading.Event().wait(0.2)
    runs.update_run("r", "FINISHED", 1)
    runs.update_run("r", "FINISHED", 2)
    ports = [port for _, port, _ in scripted.requests]
    assert len(ports) == 3 and ports[0] != ports[1] == ports[2]  # reopened once, then kept
    assert scripted.requests[0][2] == "Basic dTpw"


def test_non_finite_values_are_sent_as_protobuf_writes_them(scripted):
    seen = []
    original = RestRuns.post
    runs = _runs(scripted)
    runs.post = lambda name, endpoint, body: (seen.append(body), original(runs, name, endpoint, body))[1]
    runs.log_batch("r", {}, [("a", math.nan, 0), ("b", math.inf, 0), ("c", -math.inf, 0), ("d", 0.5, 0)], {}, 1)
    assert [m["value"] for m in seen[0]["metrics"]] == ["NaN", "Infinity", "-Infinity", 0.5]


def test_the_client_is_kept_where_a_request_needs_more(tmp_path, monkeypatch, scripted):
    sqlite = open_tracker(f"sqlite:///{tmp_path / 'm.db'}", "e")
    assert sqlite.bulk and sqlite.rest is None

    class Store:
        def __init__(self, **creds):
            self.creds = MlflowHostCreds(f"http://127.0.0.1:{scripted.server_address[1]}", **creds)

        def get_host_creds(self):
            return self.creds

    assert for_store(Store(), print) is not None
    assert for_store(Store(aws_sigv4=True), print) is None
    assert for_store(Store(client_cert_path="/c.pem"), print) is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert for_store(Store(), print) is None  # a proxy in the way: MLflow's client honours it
