"""The store and the checkpoints on an object store: a real S3-compatible server (moto's
standalone server on 127.0.0.1, ``tests/servers.py``) spoken to by pyarrow's S3 client over HTTP,
with endpoint, region and credentials only in the environment. A grid on a two-node cluster
with the store on S3 is in ``tests/test_cluster_jobs.py`` (on that module's cluster)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrator.checkpoints import CheckpointStore
from orchestrator.cli import app
from orchestrator.config import parse_config
from orchestrator.embedding_stage import embedding_stage, read_entry
from orchestrator.grid import prepare_plan
from tests.conftest import embed_in_process, run_in_process, tiny_config, write_config
from tests.servers import S3_REGION, s3_server
from workers.fs import ObjectPath, location, write_whole
from workers.store import EmbeddingStore, StoreCorruptionError
from workers.trajectory import Checkpoint

REPO = Path(__file__).resolve().parents[1]
TFIDF = [{"name": "tfidf", "model": "tfidf-svd", "dim": 8}]
SHARD_ROWS = 40


@pytest.fixture
def s3_env(s3, monkeypatch):
    """This process's environment pointed at the moto server (as a user would set it)."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


def objects(s3, bucket: str) -> list[str]:
    """Every object key in ``bucket`` (a listing by another client than the store's)."""
    from pyarrow.fs import FileSelector, FileType

    infos = s3.filesystem().get_file_info(FileSelector(bucket, recursive=True, allow_not_found=True))
    return sorted(i.path[len(bucket) + 1:] for i in infos if i.type == FileType.File)


def _curves(plan, tracker):
    runs = tracker.trial_runs()
    return {t.trial_key: {m: tracker.curve(runs[t.trial_key].run_id, m) for m in ("accuracy", "macro_f1")}
            for t in plan.trials}


class Reporter:
    """What the stage reports, kept (the console is not under test here)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


# ---------------------------------------------------------------------------------- basics


def test_object_paths_behave_like_paths_on_s3(s3_env):
    bucket = s3_env.bucket()
    root = location(f"s3://{bucket}/a/prefix/")
    assert isinstance(root, ObjectPath) and str(root) == f"s3://{bucket}/a/prefix"
    assert isinstance(location("./x"), Path) and location("file:///tmp/x") == Path("/tmp/x")
    target = root / "d" / "f.json"
    assert not target.exists() and not root.is_dir()
    with pytest.raises(FileNotFoundError):
        target.read_bytes()
    write_whole(target, b'{"a": 1}')
    assert target.is_file() and target.read_text() == '{"a": 1}' and (root / "d").is_dir()
    assert [p.name for p in root.iterdir()] == ["d"] and [p.stem for p in root.rglob("*.json")] == ["f"]
    assert target.parent == root / "d" and target.name == "f.json"
    assert objects(s3_env, bucket) == ["a/prefix/d/f.json"]  # no folder markers
    target.unlink()
    target.unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        target.unlink()
    assert objects(s3_env, bucket) == []


def test_fsspec_filesystems_too():
    pytest.importorskip("fsspec")
    root = location("memory://albench-test/store")
    write_whole(root / "x.bin", b"abc")
    assert (root / "x.bin").read_bytes() == b"abc" and [p.name for p in root.iterdir()] == ["x.bin"]


def _shards(store: EmbeddingStore, n_train=90, n_test=30, dim=8, seed=0):
    """Write a sharded entry's shards (no manifest yet); the arrays and the row counts."""
    rng = np.random.default_rng(seed)
    arrays, counts = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.normal(size=(n, dim)).astype(np.float32)
        y = rng.integers(0, 3, size=n)
        counts[split] = []
        for index, start in enumerate(range(0, n, SHARD_ROWS)):
            part = slice(start, start + SHARD_ROWS)
            store.write_shard("ds", "emb", "k" * 64, split, index, start, x[part], y[part], {"model": "m"})
            counts[split].append(len(x[part]))
        arrays[split] = (x, y)
    return arrays, counts


def test_store_on_s3_is_the_local_store_byte_for_byte(s3_env, tmp_path):
    """Same code path: the same objects as the local files, visible only with the manifest,
    and a manifest that does not match its shards is refused."""
    bucket = s3_env.bucket()
    remote, local = EmbeddingStore(f"s3://{bucket}/store"), EmbeddingStore(tmp_path)
    for store in (remote, local):
        arrays, counts = _shards(store)
        assert not store.has("ds", "emb", "k" * 64)  # shards only: not an entry yet
        store.write_manifest("ds", "emb", "k" * 64, counts, {"model": "m"})
        assert store.has("ds", "emb", "k" * 64)
        for split, (x, y) in arrays.items():
            table = store.read("ds", "emb", "k" * 64, split)
            np.testing.assert_array_equal(table.embeddings, x)
            np.testing.assert_array_equal(table.labels, y)
    keys = objects(s3_env, bucket)
    assert keys == sorted(f"store/{p.relative_to(tmp_path)}" for p in tmp_path.rglob("*") if p.is_file())
    for key in keys:
        assert (ObjectPath(f"s3://{bucket}/{key}").read_bytes()
                == (tmp_path / key.removeprefix("store/")).read_bytes()), key
    manifest = json.loads(remote.manifest_path("ds", "emb", "k" * 64).read_text())
    assert manifest["rows"] == {"train": 90, "test": 30} and len(manifest["checksums"]["train"]) == 3

    # a shard replaced by another valid shard (same rows, other vectors): the manifest notices
    rng = np.random.default_rng(9)
    remote.write_shard("ds", "emb", "k" * 64, "train", 1, SHARD_ROWS,
                       rng.normal(size=(SHARD_ROWS, 8)).astype(np.float32),
                       rng.integers(0, 3, SHARD_ROWS), {"model": "m"})
    with pytest.raises(StoreCorruptionError, match="not the shard the manifest lists"):
        remote.read("ds", "emb", "k" * 64, "train")
    remote.remove("ds", "emb", "k" * 64)
    assert objects(s3_env, bucket) == []


def test_checkpoints_on_s3_are_verified(s3_env):
    bucket = s3_env.bucket()
    checkpoints = CheckpointStore(f"s3://{bucket}/ckpt")
    assert checkpoints.trial_keys() == [] and checkpoints.load("t1") is None
    saved = Checkpoint(cycle=2, labelled_order=[3, 1, 2], rng_state={"state": {"state": 2**100}})
    with checkpoints.lock():  # nothing to hold on an object store: the tracking lease is the lock
        checkpoints.save("t1", saved)
        checkpoints.save("t2", saved)
    assert not checkpoints.locked()
    assert checkpoints.trial_keys() == ["t1", "t2"] and checkpoints.load("t1") == saved
    assert objects(s3_env, bucket) == ["ckpt/t1.json", "ckpt/t2.json"]
    body = json.loads(ObjectPath(f"s3://{bucket}/ckpt/t2.json").read_text())
    body["cycle"] = 1  # altered (or written by something else): not trusted
    write_whole(ObjectPath(f"s3://{bucket}/ckpt/t2.json"), json.dumps(body).encode())
    assert checkpoints.load("t2") is None
    checkpoints.remove("t1")
    checkpoints.remove("t1")
    assert checkpoints.trial_keys() == ["t2"]


# ---------------------------------------------------------------------------- the grid


def test_tiny_grid_with_store_and_checkpoints_on_s3_equals_local(ray_session, s3_env, corpus, tmp_path,
                                                                 monkeypatch):
    """The driver's disk holds neither: the actors write the store to S3 where they run, the
    driver reads it from there; the curves are those of the same grid on local folders."""
    local = tiny_config(corpus, tmp_path / "local", embedders=TFIDF)
    (tmp_path / "local").mkdir()
    plan_local, tracker_local, summary_local, _ = run_in_process(local)
    assert summary_local.finished == 4

    bucket = s3_env.bucket()
    workdir = tmp_path / "s3"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # where a relative path would land
    remote = tiny_config(corpus, workdir, embedders=TFIDF,
                         store={"path": f"s3://{bucket}/albench/embeddings",
                                "checkpoints": f"s3://{bucket}/albench/checkpoints"})
    opened = []  # (whether a trial checkpoints within its first second depends on the machine)
    real_init = CheckpointStore.__init__
    monkeypatch.setattr(CheckpointStore, "__init__",
                        lambda self, root: (real_init(self, root), opened.append(str(self.root)))[0])
    plan, tracker, summary, output = run_in_process(remote)
    assert summary.finished == 4 and not summary.failed, output
    assert _curves(plan, tracker) == _curves(plan_local, tracker_local)
    assert [p.name for p in workdir.iterdir()
            if "mlflow.db" not in p.name and p.name != "mlruns"] == []  # no store here (MLflow's own files only)
    keys = objects(s3_env, bucket)
    assert sum(k.endswith("manifest.json") for k in keys) == 1, keys  # the (dataset, embedder) entry
    assert opened and set(opened) == {f"s3://{bucket}/albench/checkpoints"}  # the run's checkpoints
    assert not [k for k in keys if k.startswith("albench/checkpoints/")]  # finished: none left
    store = EmbeddingStore(f"s3://{bucket}/albench/embeddings")
    for job in plan.jobs:
        assert store.has(job.dataset_name, job.embedder.name, job.key)

    # the embedding stage of a second run finds the entry on S3 and computes nothing
    result, output = embed_in_process(plan, store)
    assert "found, skipped" in output and "embedded" not in output and not result.errors
    assert objects(s3_env, bucket) == keys


# --------------------------------------------------------------- a writer killed mid-write

KILLED_WRITER = """
import json, os, signal, sys
from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from workers import fs
from workers.embedding import embed_into_store

config, root, shard_rows, survive = json.loads(sys.argv[1])
plan = prepare_plan(parse_config(config), writing=False)
job = plan.jobs[0]
uploads = []
real = fs.ObjectPath.write_whole

def write_whole(self, data):
    uploads.append(self.name)
    if len(uploads) <= survive:
        return real(self, data)
    stream = self.filesystem.open_output_stream(self.path)  # the upload begins...
    stream.write(bytes(data)[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)  # ...and its writer is killed: no close, no cleanup

fs.ObjectPath.write_whole = write_whole
embed_into_store(job, plan.datasets[job.dataset_name], root, threads=1, shard_rows=shard_rows)
"""


def test_a_writer_killed_mid_write_leaves_nothing_visible(ray_session, s3_env, corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, embedders=TFIDF)
    plan = prepare_plan(parse_config(config), writing=False)
    job, dataset = plan.jobs[0], plan.datasets[plan.jobs[0].dataset_name]
    bucket = s3_env.bucket()
    root = f"s3://{bucket}/embeddings"
    survive = 3
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, json.dumps([config, root, SHARD_ROWS, survive])],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    store = EmbeddingStore(root)
    directory = store.directory(job.dataset_name, job.embedder.name, job.key)
    prefix = str(directory).removeprefix(f"s3://{bucket}/")
    written = [f"{prefix}/shards/train-{i:05d}.parquet" for i in range(survive)]
    assert objects(s3_env, bucket) == written  # the shards that completed; not the one cut off
    assert not store.has(job.dataset_name, job.embedder.name, job.key)  # no manifest: no entry
    assert read_entry(store, job, dataset, Reporter()) is None

    rerun = embedding_stage([job], plan.datasets, store, plan.config.resources, Reporter(),
                            shard_rows=SHARD_ROWS)
    assert not rerun.errors and rerun.info[job.key]["kept"] == survive * SHARD_ROWS
    n_train, n_test = len(dataset.train_texts), len(dataset.test_texts)
    assert rerun.info[job.key]["written"] == n_train + n_test - survive * SHARD_ROWS
    assert f"{prefix}/manifest.json" in objects(s3_env, bucket)
    whole = embedding_stage([job], plan.datasets, EmbeddingStore(tmp_path / "local"), plan.config.resources,
                            Reporter(), shard_rows=SHARD_ROWS)
    a, b = rerun.data[job.key], whole.data[job.key]
    for name in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ----------------------------------------------------------------------- bad input


def _bad_run(config: dict, tmp_path: Path) -> str:
    """``albench validate`` and ``albench run`` refuse it before any work: exit 2, one clear
    message per problem, no traceback, nothing written (the output of ``run``)."""
    path = write_config(tmp_path / "broken.yaml", config)
    for command in ("validate", "run"):
        result = CliRunner().invoke(app, [command, str(path)])
        text = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert "Traceback" not in result.output and text.startswith("error:"), text
        assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml"]  # nothing written here
    return text


def _s3_config(corpus, tmp_path, bucket: str) -> dict:
    return tiny_config(corpus, tmp_path, embedders=TFIDF, seeds=[0],
                       store={"path": f"s3://{bucket}/embeddings", "checkpoints": f"s3://{bucket}/ckpt"})


def test_unreachable_endpoint_is_refused_before_any_work(s3_env, corpus, tmp_path, monkeypatch):
    bucket = s3_env.bucket()
    from tests.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead)
    text = _bad_run(_s3_config(corpus, tmp_path, bucket), tmp_path)
    for field in ("store.path", "store.checkpoints"):
        assert f"{field}: cannot reach the object store of s3://{bucket}/" in text, text
    assert f"at {dead} (from AWS_ENDPOINT_URL_S3)" in text
    assert "fix: set AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) to the server's URL" in text
    assert objects(s3_env, bucket) == [] and not (tmp_path / "embeddings").exists()


def test_status_with_an_unreachable_endpoint_is_a_clear_error(s3_env, corpus, tmp_path, monkeypatch):
    """``albench status`` (read-only) names the setting and the fix, writes nothing, no traceback."""
    bucket = s3_env.bucket()
    from tests.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead)
    path = write_config(tmp_path / "broken.yaml", _s3_config(corpus, tmp_path, bucket))
    result = CliRunner().invoke(app, ["status", str(path)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output, (result.output, result.exception)
    for field in ("store.path", "store.checkpoints"):
        assert f"{field}: cannot reach the object store of s3://{bucket}/" in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml"]


def test_missing_bucket_is_refused_before_any_work(s3_env, corpus, tmp_path):
    text = _bad_run(_s3_config(corpus, tmp_path, "no-such-bucket"), tmp_path)
    assert ("store.path: bucket 'no-such-bucket' of s3://no-such-bucket/embeddings does not exist at "
            f"{s3_env.endpoint} (from AWS_ENDPOINT_URL_S3); fix: create it") in text, text
    assert "`aws s3 mb s3://no-such-bucket`" in text and "store.checkpoints: bucket 'no-such-bucket'" in text
    assert "no-such-bucket" not in [b.path for b in _buckets(s3_env)]  # not created either


def _buckets(s3):
    from pyarrow.fs import FileSelector

    return s3.filesystem().get_file_info(FileSelector("", recursive=False))


@pytest.fixture(scope="module")
def s3_checking_keys(tmp_path_factory):
    """A second moto server that checks credentials (after the 4 requests that set it up: an
    IAM user, its key, its policy, a bucket); yields the server, the key and the bucket."""
    import boto3

    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            server = stack.enter_context(s3_server(tmp_path_factory.mktemp("moto-auth")))
        anyone = {"endpoint_url": server.endpoint, "region_name": S3_REGION,
                  "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **anyone)
        iam.create_user(UserName="albench")
        key = iam.create_access_key(UserName="albench")["AccessKey"]
        iam.put_user_policy(UserName="albench", PolicyName="store", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        boto3.client("s3", **anyone).create_bucket(Bucket="keyed")
        yield server, key, "keyed"


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_are_refused_before_any_work(s3_checking_keys, corpus, tmp_path, monkeypatch,
                                                      wrong):
    server, key, bucket = s3_checking_keys
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0" if wrong == "key" else key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong" if wrong == "secret" else key["SecretAccessKey"])
    config = _s3_config(corpus, tmp_path, bucket)
    text = _bad_run(config, tmp_path)
    for field in ("store.path", "store.checkpoints"):
        assert f"{field}: the object store refused the credentials for s3://{bucket}/" in text, text
    assert ("fix: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
            f"temporary keys) to a key that may read and write bucket '{bucket}'") in text

    # the right key passes the same check, and the check leaves nothing behind
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    from orchestrator import preflight

    assert preflight.problems(parse_config(copy.deepcopy(config))) == []
    import boto3

    listing = boto3.client("s3", endpoint_url=server.endpoint, region_name=S3_REGION,
                           aws_access_key_id=key["AccessKeyId"],
                           aws_secret_access_key=key["SecretAccessKey"]).list_objects_v2(Bucket=bucket)
    left = {o["Key"]: o["Size"] for o in listing.get("Contents", [])}
    assert left == {"embeddings/": 0, "ckpt/": 0}  # the probes are gone (pyarrow marks the folders)
