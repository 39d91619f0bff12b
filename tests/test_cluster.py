"""The cluster side of the driver on the test session's Ray: resource requests checked against
the largest node, the node each trial ran on recorded, a Ray Client address refused.

The real two-node cluster (token authentication, ``ray job submit``) is in
``tests/test_cluster_jobs.py``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.cluster import fit, live_nodes, slots
from orchestrator.config import ResourcesConfig
from orchestrator.tracking import open_tracker
from orchestrator.tracking.base import NODE_TAG
from tests.conftest import run_in_process, tiny_config, write_config

TFIDF = [{"name": "tfidf", "model": "tfidf-svd", "dim": 16}]


def cli(*args: str, env: dict | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, " ".join(result.output.split())


def test_requests_are_checked_against_the_largest_node_not_the_total():
    one_cpu_nodes = [{"CPU": 1.0}, {"CPU": 1.0}]
    default = fit(ResourcesConfig(), one_cpu_nodes)
    assert default.embedding_cpus == 1 and not default.problems  # 2 CPUs would never be placed
    assert "resources.cpus_per_embedding: 2 capped at 1" in default.notes[0]

    refused = fit(ResourcesConfig(cpus_per_trajectory=2), one_cpu_nodes)
    assert len(refused.problems) == 1
    assert refused.problems[0].startswith("resources.cpus_per_trajectory: 2 CPUs per trajectory "
                                          "actor, but the largest node has 1 (nodes: 1 CPU, 1 CPU)")
    assert "fix: set it to at most 1" in refused.problems[0]

    gpu_nodes = [{"CPU": 8.0, "GPU": 1.0}, {"CPU": 4.0}]
    assert fit(ResourcesConfig(gpus_per_embedding=1), gpu_nodes).problems == ()
    (problem,) = fit(ResourcesConfig(gpus_per_embedding=2), gpu_nodes).problems
    assert problem.startswith("resources.gpus_per_embedding: 2 GPUs per embedding actor, but the "
                              "largest node has 1")
    assert fit(ResourcesConfig(gpus_per_embedding=2), [{"CPU": 4.0}]).problems == ()  # no GPU: CPU
    assert "no live node has a CPU" in fit(ResourcesConfig(), [{"CPU": 0.0}]).problems[0]

    assert slots([{"CPU": 1.5}, {"CPU": 1.5}], 1.0) == 2  # not 3 = total // 1
    assert slots([{"CPU": 4.0}, {"CPU": 2.0}], 2.0) == 3


def test_the_default_requests_fit_this_machine_unchanged(ray_session):
    nodes = live_nodes()
    assert nodes and nodes[0]["CPU"] == 2
    result = fit(ResourcesConfig(), nodes)
    assert result.embedding_cpus == 2 and not result.problems and not result.notes


def test_a_request_no_node_can_satisfy_is_refused_before_any_run(ray_session, corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, embedders=TFIDF, strategies=[{"name": "random"}], seeds=[0],
                         resources={"cpus_per_trajectory": 3})
    code, output = cli("run", str(write_config(tmp_path / "cfg.yaml", config)))
    assert code == 2, output
    assert "resources.cpus_per_trajectory: 3 CPUs per trajectory actor, but the largest node has 2" in output
    tracker = open_tracker(config["tracking"]["uri"], "tiny", create=False)
    assert tracker.trial_runs(with_params=False) == {}  # nothing opened
    assert not (tmp_path / "embeddings").exists()  # nothing embedded


def test_each_trial_run_records_the_node_that_ran_it(ray_session, corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, embedders=TFIDF, seeds=[0])
    plan, tracker, summary, _ = run_in_process(config)
    assert summary.finished == len(plan.trials) == 2
    here = f"{socket.gethostname()} {ray_session.get_runtime_context().get_node_id()}"
    runs = tracker.trial_runs(with_params=True)
    assert {key: run.tags[NODE_TAG] for key, run in runs.items()} == dict.fromkeys(
        (t.trial_key for t in plan.trials), here)
    for run in runs.values():  # where a trial ran is no parameter: not part of what it is
        assert not any(here in str(value) for value in run.params.values())


def test_only_local_result_paths_inside_a_job_copy_are_refused(tmp_path, monkeypatch, corpus):
    """The detection itself (the real ``ray job submit`` is in tests/test_cluster_jobs.py): Ray's
    job supervisor sets RAY_JOB_CONFIG_JSON_ENV_VAR and runs the driver in the copy."""
    from orchestrator.cluster import JOB_CONFIG_ENV, job_path_problems
    from orchestrator.config import parse_config

    copy = tmp_path / "runtime_resources" / "working_dir_files" / "_ray_pkg_1"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    job = {JOB_CONFIG_ENV: '{"runtime_env": {"working_dir": "gcs://_ray_pkg_1.zip"}, "metadata": {}}'}
    inside = parse_config(tiny_config(corpus, copy, embedders=TFIDF, seeds=[0]))
    assert [p.split(":")[0] for p in job_path_problems(inside, job)] == \
        ["store.path", "store.checkpoints", "tracking.uri"]
    assert job_path_problems(inside, {}) == []  # not a job: nothing to refuse
    outside = parse_config(tiny_config(corpus, tmp_path / "kept", embedders=TFIDF, seeds=[0],
                                       tracking={"uri": "http://127.0.0.1:5000"}))
    assert job_path_problems(outside, job) == []
    on_s3 = outside.model_copy(update={"store": outside.store.model_copy(
        update={"path": Path("s3://bucket/embeddings"), "checkpoints": Path("s3://bucket/checkpoints")})})
    assert job_path_problems(on_s3, job) == []  # a URI is not a path in the copy


@pytest.mark.parametrize("address", ["ray://127.0.0.1:10001", "ray://head-node:10001"])
def test_a_ray_client_address_is_refused_before_the_lock_or_any_run(corpus, tmp_path, address):
    """No cluster is needed: the refusal comes before any connection (the real cluster's Ray
    Client port is tried in tests/test_cluster_jobs.py)."""
    config = tiny_config(corpus, tmp_path, embedders=TFIDF, seeds=[0])
    path = write_config(tmp_path / "cfg.yaml", config)
    for command in ("run", "embed", "validate"):
        code, output = cli(command, str(path), env={"RAY_ADDRESS": address})
        assert code == 2, (command, output)
        assert f"RAY_ADDRESS={address} is a Ray Client address, which albench cannot use" in output
        assert "generator actor method" in output and "ray job submit --address" in output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "checkpoints").exists()
