"""The docker-compose fleet, checked offline with `docker-compose config` (no engine runs on build machines):
every port on loopback, Redis durable and password-protected, secrets required, GPU services behind a profile."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")
SECRETS = {
    "LEPTON_REDIS_PASSWORD": "redis-secret",
    "LEPTON_API_TOKENS": '["api-token"]',
    "LEPTON_FLOWER_BASIC_AUTH": "ops:flower-secret",
    "LEPTON_S3_ACCESS_KEY": "lepton",
    "LEPTON_S3_SECRET_KEY": "store-secret",
}

pytestmark = pytest.mark.skipif(COMPOSE is None, reason="needs docker-compose (apt-get install docker-compose)")


def compose(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [COMPOSE, "--project-directory", str(REPO_ROOT), "-f", str(REPO_ROOT / "docker-compose.yml"), *arguments],
        env={**clean, **(env or {})}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def fleet(*profiles: str) -> dict[str, Any]:
    flags = [flag for profile in profiles for flag in ("--profile", profile)]
    done = compose(*flags, "config", env=SECRETS)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_the_cpu_fleet_validates_with_every_port_on_loopback_and_a_healthcheck_each() -> None:
    services = fleet()["services"]
    default = {name for name, service in services.items() if not service.get("profiles")}
    expected = {"redis", "minio", "minio-init", "api", "worker-cpu", "trainer", "flower"}
    assert default == expected, "GPU services only with --profile gpu"
    for name, service in services.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            assert published.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        one_shot = service.get("restart") == "no"  # minio-init creates the bucket and exits
        assert one_shot or service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    redis_command = " ".join(services["redis"]["command"])
    for setting in ("--appendonly yes", "--maxmemory-policy noeviction", "--requirepass"):
        assert setting in redis_command
    assert services["api"]["environment"]["LEPTON_REDIS_URL"] == "redis://:redis-secret@redis:6379/0"
    assert services["flower"]["environment"]["LEPTON_FLOWER_BASIC_AUTH"] == "ops:flower-secret"
    assert services["worker-cpu"]["build"]["target"] == "inference", "inference images carry no torch"


def test_models_and_bulk_data_travel_through_the_object_store_with_its_buckets_made_at_start() -> None:
    services = fleet("gpu")["services"]
    for name in ("api", "worker-cpu", "worker-gpu", "trainer", "trainer-gpu", "flower"):
        environment = services[name]["environment"]
        assert environment["LEPTON_MODEL_STORE"] == "s3://lepton-models/registry", name
        assert environment["LEPTON_DATA_STORE"] == "s3://lepton-data/store", f"{name}: no data store the API shares"
        assert environment["AWS_SECRET_ACCESS_KEY"] == "store-secret", name
        assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully", name
        mounts = [
            str(volume.get("target") if isinstance(volume, dict) else volume) for volume in services[name]["volumes"]
        ]
        assert not any("/models" in mount for mount in mounts), f"{name} still mounts a shared model volume"
    assert "mc mb --ignore-existing store/lepton-models store/lepton-data" in " ".join(
        services["minio-init"]["entrypoint"]
    )
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == "store-secret"


def test_the_gpu_profile_adds_cuda_services_with_a_device_reservation() -> None:
    services = fleet("gpu")["services"]
    for name in ("worker-gpu", "trainer-gpu"):
        assert services[name]["profiles"] == ["gpu"]
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        assert "--device" in services[name]["command"] and "cuda" in services[name]["command"]
    assert services["worker-gpu"]["build"]["target"] == "inference-gpu"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_the_fleet_refuses_to_start_without_each_secret(missing: str) -> None:
    done = compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != missing})
    assert done.returncode != 0 and missing in done.stderr


def test_the_dockerfile_keeps_torch_out_of_the_inference_images() -> None:
    stages: dict[str, list[str]] = {}
    current = ""
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
            stages[current] = []
        elif current and line.startswith("RUN "):
            stages[current].append(line)
    assert {"inference", "inference-gpu", "trainer"} <= set(stages)
    for stage in ("inference", "inference-gpu"):
        assert stages[stage] and not any("torch" in run or "train" in run for run in stages[stage]), stage
    assert any("torch==2.13.0" in run for run in stages["trainer"])
