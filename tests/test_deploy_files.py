"""The deployment files match what the cluster path needs: ``docker/compose.yaml`` as
``docker-compose config`` resolves it (there is no docker engine here: images are not built or
started), and ``docker/kuberay/rayjob.yaml`` as a KubeRay ``RayJob``."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"
RAYJOB = ROOT / "docker" / "kuberay" / "rayjob.yaml"
SECRETS = {"ALBENCH_S3_ACCESS_KEY": "access-key", "ALBENCH_S3_SECRET_KEY": "secret-key",
           "ALBENCH_POSTGRES_PASSWORD": "pg-password"}
RAY_SERVICES = ("ray-head", "ray-gpu-worker", "ray-cpu-worker")


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    tool = shutil.which("docker-compose")
    if tool is None:
        if os.environ.get("ALBENCH_REQUIRE_TOOLS") == "1":
            pytest.fail("docker-compose is not installed (ALBENCH_REQUIRE_TOOLS=1)")
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([tool, "-f", str(COMPOSE), "config"], check=False, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose() -> dict:
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_is_valid_and_publishes_on_loopback_only(compose):
    services = compose["services"]
    assert {"postgres", "mlflow", "s3", *RAY_SERVICES} <= set(services)
    published = [(name, port) for name, service in services.items() for port in service.get("ports", [])]
    assert published, "nothing published"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), (name, port)
    assert "postgres" not in {name for name, _ in published}  # only MLflow talks to the database


def test_compose_refuses_to_start_without_its_secrets():
    missing = compose_config({k: v for k, v in SECRETS.items() if k != "ALBENCH_S3_SECRET_KEY"})
    assert missing.returncode != 0 and "set ALBENCH_S3_SECRET_KEY" in missing.stderr, missing.stderr


def test_compose_mlflow_is_on_postgres_with_artifacts_served_from_the_object_store(compose):
    mlflow = compose["services"]["mlflow"]
    command = shlex.split(mlflow["command"])
    option = {a: command[i + 1] for i, a in enumerate(command[:-1]) if a.startswith("--")}
    assert command[:2] == ["mlflow", "server"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"] == \
        "postgresql+psycopg://mlflow:pg-password@postgres:5432/mlflow"
    assert option["--artifacts-destination"].startswith("s3://") and "--serve-artifacts" in command
    hosts = option["--allowed-hosts"].split(",")
    assert "mlflow" in hosts and "mlflow:*" in hosts, hosts  # the service name, with its port
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:9000"
    assert set(mlflow["depends_on"]) == {"postgres", "s3-bucket"}
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-password"


def test_compose_ray_nodes_share_the_store_the_token_and_the_tracker(compose):
    services = compose["services"]
    for name in RAY_SERVICES:
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_auth_token", name
        assert [s["source"] for s in services[name]["secrets"]] == ["ray_auth_token"], name
        assert env["AWS_ENDPOINT_URL"] == "http://s3:9000", name
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("access-key", "secret-key")
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert not services[name].get("volumes"), f"{name}: no shared filesystem between nodes"
    assert compose["secrets"]["ray_auth_token"]["file"].endswith("docker/secrets/ray_auth_token")
    assert "--head" in services["ray-head"]["command"]
    for worker in ("ray-gpu-worker", "ray-cpu-worker"):
        assert "--address=ray-head:6379" in services[worker]["command"]
    (device,) = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "--num-gpus=0" in services["ray-cpu-worker"]["command"]
    assert services["ray-head"]["ports"] == ["127.0.0.1:8265:8265/tcp"]  # the jobs API, nothing else
    assert "docker/secrets/" in (ROOT / ".gitignore").read_text()  # the token is never committed


def _rayjob() -> tuple[dict, dict]:
    documents = [d for d in yaml.safe_load_all(RAYJOB.read_text()) if d]
    kinds = {d["kind"]: d for d in documents}
    return kinds["RayJob"], kinds["ConfigMap"]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_rayjob_has_what_a_kuberay_rayjob_needs():
    job, config_map = _rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["metadata"]["name"]
    spec = job["spec"]
    assert spec["entrypoint"].split()[:2] == ["albench", "run"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    gpu = [g for g in groups.values() if "nvidia.com/gpu" in
           g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    cpu = [g for g in groups.values() if g not in gpu]
    assert len(gpu) == 1 and len(cpu) == 1, groups
    assert cpu[0]["rayStartParams"].get("num-gpus") == "0"
    pods = [head["template"], *(g["template"] for g in groups.values())]
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert isinstance(group["rayStartParams"], dict)
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        env = _env(container)
        assert container["image"]
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        for name in ("RAY_AUTH_TOKEN", "MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID",
                     "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "albench", name
    submitter = _env(spec["submitterPodTemplate"]["spec"]["containers"][0])
    assert "secretKeyRef" in submitter["RAY_AUTH_TOKEN"]["valueFrom"]

    # the entrypoint's config is the mounted ConfigMap, a valid albench config with its results
    # on the object store and MLflow from the environment (the Secret)
    config_path = spec["entrypoint"].split()[2]
    mount = head["template"]["spec"]["containers"][0]["volumeMounts"][0]
    assert config_path.startswith(mount["mountPath"] + "/")
    volume = {v["name"]: v for v in head["template"]["spec"]["volumes"]}[mount["name"]]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    raw = yaml.safe_load(config_map["data"][Path(config_path).name])
    assert "tracking" not in raw
    config = parse_config(raw)
    assert str(raw["store"]["path"]).startswith("s3://") and str(raw["store"]["checkpoints"]).startswith("s3://")
    assert config.name
