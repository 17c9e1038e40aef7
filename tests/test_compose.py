"""The docker-compose fleet, checked offline with `docker-compose config` and by reading the Dockerfile: every port
on loopback, Redis durable and password-protected, secrets required, GPU services behind a profile, pinned installs
from the wheelhouse. The fleet run for real is tests/test_compose_fleet.py (`make compose-test`)."""

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
    "LEPTON_SCRAPE_TOKEN": "scrape-token",
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
    expected = {"redis", "minio", "store-init", "api", "worker-cpu", "trainer", "flower", "prometheus"}
    assert default == expected, "GPU services only with --profile gpu"
    for name, service in services.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            assert published.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        one_shot = service.get("restart") == "no"  # store-init makes the buckets and exits
        image_check = name in ("redis", "prometheus")  # their images' own HEALTHCHECK (Dockerfile)
        assert one_shot or image_check or service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    redis_command = " ".join(services["redis"]["command"])
    for setting in ("--appendonly yes", "--maxmemory-policy noeviction", "--requirepass"):
        assert setting in redis_command
    assert services["api"]["environment"]["LEPTON_REDIS_URL"] == "redis://:redis-secret@redis:6379/0"
    assert services["flower"]["environment"]["LEPTON_FLOWER_BASIC_AUTH"] == "ops:flower-secret"
    assert services["worker-cpu"]["build"]["target"] == "inference", "inference images carry no torch"
    assert not services["worker-cpu"].get("ports"), "a published port would stop --scale worker-cpu=2"
    assert services["prometheus"]["environment"]["LEPTON_SCRAPE_TOKEN"] == "scrape-token"


def test_models_and_bulk_data_travel_through_the_object_store_with_its_buckets_made_at_start() -> None:
    services = fleet("gpu")["services"]
    for name in ("api", "worker-cpu", "worker-gpu", "trainer", "trainer-gpu", "flower"):
        environment = services[name]["environment"]
        assert environment["LEPTON_MODEL_STORE"] == "s3://lepton-models/registry", name
        assert environment["LEPTON_DATA_STORE"] == "s3://lepton-data/store", f"{name}: no data store the API shares"
        assert environment["AWS_SECRET_ACCESS_KEY"] == "store-secret", name
        assert services[name]["depends_on"]["store-init"]["condition"] == "service_completed_successfully", name
        mounts = [
            str(volume.get("target") if isinstance(volume, dict) else volume) for volume in services[name]["volumes"]
        ]
        assert not any("/models" in mount for mount in mounts), f"{name} still mounts a shared model volume"
    assert '("lepton-models", "lepton-data")' in " ".join(services["store-init"]["command"])
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


def dockerfile_stages() -> dict[str, list[str]]:
    """Each stage of the Dockerfile: its instructions (continuation lines joined)."""
    stages: dict[str, list[str]] = {}
    current = ""
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
            stages[current] = [line]
        elif current and line and not line.startswith("#"):
            stages[current].append(line)
    return stages


def test_the_dockerfile_keeps_torch_out_of_the_inference_images_and_installs_only_pinned_wheels() -> None:
    stages = dockerfile_stages()
    assert {"inference", "inference-gpu", "trainer", "redis", "prometheus", "s3-standin"} <= set(stages)
    for image in ("inference", "inference-gpu", "trainer", "s3-standin"):
        installs = [line for line in stages[f"build-{image}"] if "pip install" in line]
        assert installs and all("--no-index" in line and "--no-deps" in line for line in installs), (
            f"{image}: only the wheelhouse, only the pins"
        )
        assert f"requirements-{image}.txt" in installs[0] and "pip check" in installs[-1], image
        runtime = stages[image]
        assert any(line.startswith("USER lepton") for line in runtime), f"{image} runs as root"
        assert not any(line.startswith(("RUN", "COPY build")) for line in runtime), f"{image}: no build in runtime"
    for image in ("inference", "inference-gpu"):
        pins = (REPO_ROOT / "docker" / f"requirements-{image}.txt").read_text()
        assert "\ntorch==" not in pins and "\ntransformers==" not in pins, f"{image} carries torch"
    trainer_pins = (REPO_ROOT / "docker" / "requirements-trainer.txt").read_text()
    assert "\ntorch==2.13.0" in trainer_pins


def test_every_image_pin_is_exact() -> None:
    for path in sorted((REPO_ROOT / "docker").glob("requirements-*.txt")):
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                name, _, version = line.partition("==")
                assert name and version and not set(version) & set("<>=,; "), f"{path.name}: {line} is not pinned"
