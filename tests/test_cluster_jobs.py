"""A real two-node Ray cluster on this machine (``tests/ray_cluster.py``: ``ray start --head`` and
``ray start --address``, one CPU each, token authentication on), driven the ways the README's
"Running on a cluster" section documents: ``ray job submit`` of a grid, a second submission that
runs only the new trials, ``albench status`` on the submitting side; and refused the ways it says
are refused: a Ray Client address, relative result paths under ``ray job submit``, a client
without the cluster's token.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.tracking import open_tracker
from orchestrator.tracking.base import NODE_TAG
from tests.conftest import run_in_process, tiny_config, write_config
from tests.ray_cluster import ray_cluster
from tests.test_object_store import TFIDF as TFIDF_8
from tests.test_object_store import _curves, objects

pytestmark = pytest.mark.cluster
TFIDF = [{"name": "tfidf", "model": "tfidf-svd", "dim": 16}]
STRATEGIES = [{"name": "random"}, {"name": "margin"}]


@pytest.fixture(scope="module")
def cluster():
    """Nodes with no store credentials of their own (``AWS_*`` not inherited)."""
    with ray_cluster(workers=1, head_cpus=1, worker_cpus=1, token=True, drop_env=("AWS_",)) as running:
        yield running


def flat(text: str) -> str:
    return " ".join(text.split())


def submit(cluster, job_dir, config_name: str = "cfg.yaml") -> subprocess.CompletedProcess:
    """The README's command: ``ray job submit --address ... --working-dir . -- albench run CONFIG``."""
    return cluster.ray("job", "submit", "--address", cluster.dashboard, "--working-dir", ".", "--",
                       "albench", "run", config_name, cwd=job_dir, timeout=240)


def status_here(config_path) -> str:
    """``albench status`` on the submitting side (this process, no Ray)."""
    result = CliRunner().invoke(app, ["status", str(config_path)])
    assert result.exit_code == 0, result.output
    return flat(result.output)


def test_job_submit_results_come_back_and_a_new_seed_runs_only_its_trials(cluster, corpus, tmp_path):
    shared = tmp_path / "shared"  # absolute paths both nodes and the submitter see (one machine)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    config = tiny_config(corpus, shared, embedders=TFIDF, strategies=STRATEGIES, seeds=[0])
    path = write_config(job_dir / "cfg.yaml", config)

    first = submit(cluster, job_dir)
    output = flat(first.stdout)
    assert first.returncode == 0, first.stdout
    assert "succeeded" in output, output
    # 1-CPU nodes: the default cpus_per_embedding (2) is capped at the largest node, not the total
    assert "resources.cpus_per_embedding: 2 capped at 1" in output, output
    assert "finished 2, failed 0, skipped 0" in output, output
    assert "2 trials: 2 done, 0 failed, 0 running, 0 pending" in status_here(path)

    write_config(path, dict(config, seeds=[0, 1]))
    second = submit(cluster, job_dir)
    output = flat(second.stdout)
    assert second.returncode == 0, second.stdout
    assert "finished 2, failed 0, skipped 2 (already done)" in output, output
    assert "store: topics x tfidf found, skipped" in output, output  # the same store, seen from the job
    assert "running 2 trials on 2 actors" in output, output  # one actor per 1-CPU node
    assert "4 trials: 4 done, 0 failed, 0 running, 0 pending" in status_here(path)

    runs = open_tracker(config["tracking"]["uri"], "tiny", create=False).all_trial_runs()
    assert len(runs) == 4 and len({r.trial_key for r in runs}) == 4  # nothing computed twice
    nodes = {r.tags[NODE_TAG] for r in runs}
    assert all(re.fullmatch(r"\S+ [0-9a-f]{56}", node) for node in nodes), nodes


def test_a_driver_on_the_head_with_the_token_runs_the_grid(cluster, corpus, tmp_path):
    """The README's ``RAY_ADDRESS=<head>:6379 albench run CONFIG``, token authentication on."""
    config = tiny_config(corpus, tmp_path, embedders=TFIDF, strategies=STRATEGIES, seeds=[0])
    path = write_config(tmp_path / "cfg.yaml", config)
    result = subprocess.run(["albench", "run", str(path)], check=False, env=cluster.client_env(),
                            cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=240)
    output = flat(result.stdout)
    assert result.returncode == 0, output
    assert "running 2 trials on 2 actors" in output and "finished 2, failed 0" in output, output
    runs = open_tracker(config["tracking"]["uri"], "tiny", create=False).all_trial_runs()
    assert len(runs) == 2 and all(r.status == "FINISHED" and r.tags[NODE_TAG] for r in runs)


def test_relative_result_paths_are_refused_under_job_submit(cluster, corpus, tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    config = tiny_config(corpus, tmp_path, embedders=TFIDF, strategies=STRATEGIES, seeds=[0],
                         tracking={"uri": "sqlite:///mlflow.db"},
                         store={"path": "embeddings", "checkpoints": ".albench/checkpoints"})
    write_config(job_dir / "cfg.yaml", config)
    result = submit(cluster, job_dir)
    output = flat(result.stdout)
    squashed = re.sub(r"\s", "", result.stdout)  # long paths are wrapped anywhere in the log
    assert result.returncode != 0, result.stdout
    assert "failed" in output and "3 problem(s), found before any work started" in output, output
    for field in ("store.path", "store.checkpoints", "tracking.uri"):
        assert re.search(rf"{re.escape(field)}:/\S+?/working_dir_files/\S+?isinsidethetemporarycopy"
                         r"ofthejob'sworkingdirectory", squashed), (field, output)
    assert "fix: an MLflow server (http://...)" in output and "or s3://" in output, output


def test_a_ray_client_address_is_refused(cluster, corpus, tmp_path):
    """The cluster's real Ray Client port (this process: the refusal comes before any connection,
    lock or run)."""
    path = write_config(tmp_path / "cfg.yaml", tiny_config(corpus, tmp_path, embedders=TFIDF, seeds=[0]))
    result = CliRunner().invoke(app, ["run", str(path)],
                                env=cluster.client_env(RAY_ADDRESS=cluster.client_address))
    output = flat(result.output)
    assert result.exit_code == 2, output
    assert f"RAY_ADDRESS={cluster.client_address} is a Ray Client address" in output, output
    assert "fix: run the driver on the head node with RAY_ADDRESS=<head>:6379" in output, output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "checkpoints").exists()


def test_a_client_without_the_token_gets_the_fix(cluster, corpus, tmp_path):
    path = write_config(tmp_path / "cfg.yaml", tiny_config(corpus, tmp_path, embedders=TFIDF, seeds=[0]))
    # RAY_AUTH_TOKEN comes before the cluster's token file. Ray retries a refused connection once
    # a second for 20 s by default: 2 tries are enough here.
    env = cluster.client_env(RAY_AUTH_TOKEN="not-the-cluster-token", RAY_gcs_server_port_wait_time_s="2")
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(path)], check=False,
                            env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=180)
    output = flat(result.stdout)
    assert result.returncode == 2, output
    assert (f"cannot connect to {cluster.address}: the Ray cluster refused this client's "
            "authentication token; fix: set RAY_AUTH_MODE=token") in output, output
    assert "Traceback" not in output


def test_two_node_cluster_with_the_store_on_s3(ray_session, cluster, s3, corpus, tmp_path):
    """A grid driven from a third folder onto a two-node cluster whose nodes share no folder and
    have no store credentials of their own: the store lands on S3, MLflow in SQLite at an
    absolute path, and the curves are those of the same grid run locally."""
    bucket = s3.bucket()
    driver = tmp_path / "driver"
    driver.mkdir()
    config = tiny_config(corpus, driver, embedders=TFIDF_8, resources={"cpus_per_embedding": 1},
                         store={"path": f"s3://{bucket}/embeddings", "checkpoints": f"s3://{bucket}/ckpt"})
    path = write_config(driver / "grid.yaml", config)
    command = [sys.executable, "-c", "from orchestrator.cli import main; main()", "run", str(path)]
    done = subprocess.run(command, cwd=driver, env=cluster.client_env(**s3.env),
                          capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    nodes = {name: {p.name for p in (cluster.root / name).rglob("*")} for name in cluster.nodes}
    assert "finished 4, failed 0" in " ".join(done.stdout.split()), done.stdout
    # the driver's folder holds the config and what MLflow and the report write, never the store
    assert sorted(p.name for p in driver.iterdir()
                  if "mlflow.db" not in p.name and p.name not in ("mlruns", "reports")) == ["grid.yaml"]
    assert sorted(nodes) == ["head", "worker0"]
    for node, names in nodes.items():  # neither node's folder holds the store or the checkpoints
        assert not names & {"manifest.json", "embeddings", "ckpt"}, node
    assert any(k.endswith("manifest.json") for k in objects(s3, bucket))

    local = tiny_config(corpus, tmp_path / "local", embedders=TFIDF_8)
    (tmp_path / "local").mkdir()
    plan_local, tracker_local, _, _ = run_in_process(local)
    plan = prepare_plan(parse_config(config), writing=False)
    tracker = open_tracker(config["tracking"]["uri"], config["name"])
    assert _curves(plan, tracker) == _curves(plan_local, tracker_local)
