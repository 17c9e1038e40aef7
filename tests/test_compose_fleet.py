"""The fleet in containers, for real (`make compose-test`): the images built, `compose up`, a model published from
the host into the fleet's object store, a bulk job and one-text requests through the API from outside, the inference
workers scaled to 2 and one of them `docker kill`ed mid-job (its chunks run again: the output exact), Flower behind
its password, Prometheus with every target up, then `down` with the volumes and nothing of the project left.

Runs only with LEPTON_COMPOSE_TEST=1 (it builds images and starts a dozen containers: minutes) and a Docker engine
that answers; `make compose-test` builds the images first. Where MinIO's image cannot be pulled the object store is
the stand-in of docker/compose.offline.yml. Figures go to LEPTON_COMPOSE_REPORT (bench/results/compose.md).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.machine import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose") or shutil.which("docker")
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
READY_TIMEOUT_S = 300
JOB_TIMEOUT_S = 600
BULK_TEXTS = 40_000
CHUNK_SIZE = 500
T = TypeVar("T")
# The host ports the fleet publishes on loopback (docker-compose.yml): free ones, so a host's own Redis is left be.
PORT_SETTINGS = ("LEPTON_API_PORT", "LEPTON_FLOWER_PORT", "LEPTON_PROMETHEUS_PORT", "LEPTON_REDIS_PORT",
                 "LEPTON_S3_PORT", "LEPTON_S3_CONSOLE_PORT")  # fmt: skip


def engine_problem() -> str | None:
    """Why the fleet cannot run here, or None."""
    if os.environ.get("LEPTON_COMPOSE_TEST") != "1":
        return "builds images and runs the fleet (minutes): `make compose-test` (docs/operations/deploy.md)"
    if COMPOSE is None:
        return "needs docker-compose or the docker CLI with Compose v2"
    done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"no Docker engine answers ({done.stderr.strip()[:200]}): start dockerd (docs/operations/deploy.md)"
    return None


pytestmark = pytest.mark.skipif(engine_problem() is not None, reason=str(engine_problem()))


@dataclass
class Fleet:
    """One compose project: its name, env file, files and published ports; ``run`` drives it."""

    project: str
    env_file: Path
    files: list[str]
    ports: dict[str, int]
    secrets: dict[str, str]
    figures: dict[str, str] = field(default_factory=dict)

    def run(self, *arguments: str, timeout_s: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        prefix = [COMPOSE] if COMPOSE.endswith("docker-compose") else [COMPOSE, "compose"]
        files = [argument for file in self.files for argument in ("-f", file)]
        command = [*prefix, "--project-name", self.project, "--project-directory", str(REPO_ROOT),
                   "--env-file", str(self.env_file), *files, *arguments]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(arguments)} failed ({done.returncode}): {done.stderr[-3000:]}")
        return done

    def containers(self, service: str | None = None) -> list[str]:
        labels = [f"label=com.docker.compose.project={self.project}"]
        if service:
            labels.append(f"label=com.docker.compose.service={service}")
        filters = [part for label in labels for part in ("--filter", label)]
        done = subprocess.run(["docker", "ps", "-q", *filters], capture_output=True, text=True, check=True)
        return done.stdout.split()

    def health(self) -> list[tuple[str, str]]:
        """(service, health) of each running container (its state where it has no healthcheck)."""
        ids = self.containers()
        if not ids:
            return []
        done = subprocess.run(
            ["docker", "inspect", "--format",
             '{{index .Config.Labels "com.docker.compose.service"}} '
             "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}", *ids],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return [(line.split()[0], line.split()[1]) for line in done.stdout.splitlines()]

    def healthy(self, service: str) -> int:
        return sum(1 for name, state in self.health() if name == service and state == "healthy")

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.ports['LEPTON_API_PORT']}",
            headers={"Authorization": f"Bearer {self.secrets['api']}"}, timeout=60,
        )  # fmt: skip

    def host_env(self) -> dict[str, str]:
        """A host-side `lepton` that publishes into the fleet's store and tells its Redis."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")},
            "LEPTON_MODEL_STORE": "s3://lepton-models/registry",
            "LEPTON_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.ports['LEPTON_S3_PORT']}",
            "AWS_ACCESS_KEY_ID": "lepton", "AWS_SECRET_ACCESS_KEY": self.secrets["store"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "LEPTON_REDIS_URL": f"redis://:{self.secrets['redis']}@127.0.0.1:{self.ports['LEPTON_REDIS_PORT']}/0",
        }  # fmt: skip


def wait_for(condition: Callable[[], T], what: str, timeout_s: float) -> T:
    """Poll ``condition`` (containers, HTTP answers: nothing to wait on but their state) until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = condition()
        except (httpx.HTTPError, AssertionError) as error:
            result, last = None, repr(error)  # not up yet
        else:
            last = ""
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s ({last})")
        time.sleep(1.0)


def minio_can_be_had() -> bool:
    if subprocess.run(["docker", "image", "inspect", MINIO_IMAGE], capture_output=True).returncode == 0:
        return True
    try:
        return subprocess.run(["docker", "pull", MINIO_IMAGE], capture_output=True, timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The fleet up and ready (every service healthy, the buckets made); down with its volumes after."""
    scratch = tmp_path_factory.mktemp("compose")
    keys = {name: secrets.token_urlsafe(18) for name in ("redis", "api", "scrape", "flower", "store")}
    ports = {name: free_port() for name in PORT_SETTINGS}
    env_file = scratch / "fleet.env"
    env_file.write_text(
        "\n".join(
            [
                f"LEPTON_REDIS_PASSWORD={keys['redis']}",
                f'LEPTON_API_TOKENS=["{keys["api"]}","metrics:read:{keys["scrape"]}"]',
                f"LEPTON_SCRAPE_TOKEN={keys['scrape']}",
                f"LEPTON_FLOWER_BASIC_AUTH=ops:{keys['flower']}",
                "LEPTON_S3_ACCESS_KEY=lepton",
                f"LEPTON_S3_SECRET_KEY={keys['store']}",
                f"LEPTON_BASE_IMAGE={os.environ.get('BASE_IMAGE', 'debian:bookworm-slim')}",
                "LEPTON_CHUNK_SIZE=500",
                *(f"{name}={port}" for name, port in ports.items()),
            ]
        )
        + "\n"
    )
    env_file.chmod(0o600)
    files = [str(REPO_ROOT / "docker-compose.yml")]
    if not minio_can_be_had():
        files.append(str(REPO_ROOT / "docker" / "compose.offline.yml"))
    fleet = Fleet(f"lepton-ct-{uuid.uuid4().hex[:8]}", env_file, files, ports, keys)
    fleet.figures["object store"] = "MinIO" if len(files) == 1 else "moto stand-in (MinIO's image unreachable)"
    try:
        started = time.monotonic()
        fleet.run("up", "-d", "--no-build")
        services = ("redis", "minio", "api", "worker-cpu", "trainer", "flower", "prometheus")

        def ready() -> bool:  # store-init has made the buckets and left (the API and workers wait for it)
            return all(fleet.healthy(service) for service in services)

        wait_for(ready, "every service healthy", READY_TIMEOUT_S)
        fleet.figures["time from `up` to every service healthy"] = f"{time.monotonic() - started:.0f} s"
        yield fleet
    finally:
        fleet.run("logs", "--no-color", "--tail", "200", check=False, timeout_s=120)
        fleet.run("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False, timeout_s=300)
        left = {
            kind: subprocess.run(
                ["docker", *command, "--filter", f"label=com.docker.compose.project={fleet.project}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            for kind, command in {
                "containers": ["ps", "-aq"],
                "networks": ["network", "ls", "-q"],
                "volumes": ["volume", "ls", "-q"],
            }.items()
        }
        fleet.figures["left after `down --volumes`"] = ", ".join(f"{len(v)} {k}" for k, v in left.items())
        report(fleet)
        assert not any(left.values()), f"the project left {left} behind"


def report(fleet: Fleet) -> None:
    path = os.environ.get("LEPTON_COMPOSE_REPORT")
    sizes = subprocess.run(
        ["docker", "image", "ls", "lepton-runtime", "--format", "{{.Tag}} {{.Size}}"], capture_output=True, text=True
    ).stdout.split("\n")
    engine = subprocess.run(
        ["docker", "info", "--format", "Docker {{.ServerVersion}} with the {{.Driver}} storage driver"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    lines = [
        "# The fleet in containers (`make compose-test`)",
        "",
        f"{os.cpu_count()} cores, {engine}, images built on {os.environ.get('BASE_IMAGE', 'debian:bookworm-slim')}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in fleet.figures.items()),
        "",
        "| image | size |",
        "| --- | ---: |",
        *(f"| lepton-runtime:{line.split()[0]} | {line.split()[1]} |" for line in sizes if line.strip()),
    ]
    print("\n".join(lines))
    if path:
        Path(path).write_text("\n".join(lines) + "\n")


def published_model(fleet: Fleet, checkpoint: Path) -> str:
    """`lepton export` on the host into the fleet's object store (the fleet hears of it through Redis)."""
    done = subprocess.run(
        [sys.executable, "-m", "lepton_runtime", "export", str(checkpoint), "--name", "intents", "--variant", "fp32",
         "--promote", "production"],
        env=fleet.host_env(), capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def finished(api: httpx.Client, job_id: str) -> dict[str, Any]:
    status: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").raise_for_status().json()
    return status if status["state"] in ("succeeded", "failed", "cancelled") else {}


def test_the_fleet_runs_jobs_through_a_killed_worker_and_shows_itself(
    fleet: Fleet, tiny_checkpoint: Path, banking: LabelledTexts
) -> None:
    reference = published_model(fleet, tiny_checkpoint)
    texts = list(banking.texts)
    with fleet.api() as api:
        # one-text requests and a small bulk job, from outside the containers
        answer = wait_for(
            lambda: api.post("/v1/classify", json={"texts": texts[:3], "model": "intents", "wait_s": 30}).json(),
            "a classify answer", 120,
        )  # fmt: skip
        assert answer["state"] == "succeeded" and len(answer["predictions"]) == 3, answer
        assert f"{answer['model']['model']}@{answer['model']['version']}" == reference, answer
        small = api.post("/v1/jobs", json={"texts": texts[:1200], "model": "intents"}).raise_for_status().json()
        status = wait_for(lambda: finished(api, small["job_id"]), "the small job", JOB_TIMEOUT_S)
        assert status["state"] == "succeeded", status
        rows = [json.loads(line) for line in api.get(f"/v1/jobs/{small['job_id']}/results").text.splitlines()]
        assert [row["id"] for row in rows] == [str(i) for i in range(1200)]

        # two inference workers; Prometheus sees every worker, the trainer and the API up
        fleet.run("up", "-d", "--no-build", "--no-recreate", "--scale", "worker-cpu=2")
        wait_for(lambda: fleet.healthy("worker-cpu") == 2, "two healthy inference workers", READY_TIMEOUT_S)
        prometheus = f"http://127.0.0.1:{fleet.ports['LEPTON_PROMETHEUS_PORT']}"

        def targets_up() -> dict[str, int]:
            active = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
            jobs: dict[str, int] = {}
            for target in active:
                assert target["health"] == "up", target
                jobs[target["labels"]["job"]] = jobs.get(target["labels"]["job"], 0) + 1
            return jobs if jobs.get("lepton-workers") == 2 else {}

        jobs = wait_for(targets_up, "Prometheus: every target up", 120)
        assert jobs == {"lepton-workers": 2, "lepton-trainers": 1, "lepton-api": 1, "prometheus": 1}, jobs
        fleet.figures["Prometheus targets up"] = ", ".join(f"{job} {count}" for job, count in sorted(jobs.items()))

        # Flower: refused without its password, the workers listed with it
        flower = f"http://127.0.0.1:{fleet.ports['LEPTON_FLOWER_PORT']}"
        assert httpx.get(f"{flower}/api/workers", timeout=10).status_code == 401
        listed = httpx.get(  # refresh: Flower asks the workers now rather than waiting for their heartbeats
            f"{flower}/api/workers", params={"refresh": "1"}, auth=("ops", fleet.secrets["flower"]), timeout=60
        )
        assert listed.status_code == 200
        assert len(listed.json()) == 3, f"2 inference workers and the trainer: {sorted(listed.json())}"
        fleet.figures["Flower"] = f"401 without its password; with it, {len(listed.json())} workers listed"

        # a bulk job while one inference worker is killed: its chunks run again on the other, the output exact
        bulk = [texts[i % len(texts)] for i in range(BULK_TEXTS)]
        job = api.post("/v1/jobs", json={"texts": bulk, "model": "intents", "chunk_size": CHUNK_SIZE})
        job_id = job.raise_for_status().json()["job_id"]
        wait_for(lambda: api.get(f"/v1/jobs/{job_id}").json()["done_chunks"] >= 4, "the large job under way", 300)
        victim = fleet.containers("worker-cpu")[0]
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        killed_at = api.get(f"/v1/jobs/{job_id}").json()
        status = wait_for(lambda: finished(api, job_id), "the large job", JOB_TIMEOUT_S)
        assert status["state"] == "succeeded", status
        rows = [json.loads(line) for line in api.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
        assert [row["id"] for row in rows] == [str(i) for i in range(BULK_TEXTS)], "every id once, in order"
        assert all(row.get("label") for row in rows)
        assert status["chunk_runs"] > status["total_chunks"], "the killed worker's chunks ran again elsewhere"
        fleet.figures["a worker container killed mid-job"] = (
            f"at {killed_at['done_chunks']} of {killed_at['total_chunks']} chunks; the job succeeded with"
            f" {status['chunk_runs'] - status['total_chunks']} chunk runs redone, {len(rows):,} rows, every id once,"
            " in order"
        )
