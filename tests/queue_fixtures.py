"""Fixtures for the queue: a real Redis on loopback (a dedicated database, flushed before and after) and
real `lepton worker` processes, awaited through the readiness list they push to, never by sleeping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from lepton_runtime.jobs import connect
from lepton_runtime.jobs.keys import worker_ready_key
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from workers.embedded import LocalRedis

REPO_ROOT = Path(__file__).resolve().parent.parent
# Database index of the tests on a shared Redis; flushed before and after each test.
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """LEPTON_TEST_REDIS_URL, else database 15 of the Redis on 6379, else a redis-server started here."""
    url = os.environ.get("LEPTON_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{TEST_DB}")
    try:
        with connect(url) as client:
            client.ping()
        yield url
        return
    except redis.ConnectionError:
        pass
    server = LocalRedis(_free_port(), tmp_path_factory.mktemp("redis"), appendonly=False)
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
def queue_env(redis_client: redis.Redis, redis_url: str, published: ModelVersion) -> dict[str, str]:
    """The LEPTON_* environment of workers and clients: test Redis, the published tiny model, short limits."""
    return {
        "LEPTON_REDIS_URL": redis_url,
        "LEPTON_MODEL_DIR": str(published.path.parent.parent),
        **TEST_LIMITS,
    }


@pytest.fixture
def queue_settings(queue_env: dict[str, str]) -> LeptonSettings:
    values = {key.removeprefix("LEPTON_").lower(): value for key, value in queue_env.items()}
    values["redis_url"] = SecretStr(values["redis_url"])
    return LeptonSettings(**values)


class WorkerProcess:
    """A real `lepton worker` in its own process group, with its log in a file."""

    def __init__(self, env: dict[str, str], log_dir: Path, concurrency: int, extra: list[str]) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        self.concurrency = concurrency
        self.log_path = log_dir / f"{self.name.split('@')[0]}.log"
        command = [
            sys.executable, "-m", "lepton_runtime", "worker", "--name", self.name,
            "--concurrency", str(concurrency), "--threads", "1", "--warm", "tiny@production", *extra,
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, client: redis.Redis) -> None:
        """Block until every pool process announced itself (after warming its model)."""
        for _ in range(self.concurrency):
            if client.blpop([worker_ready_key(self.name)], timeout=WORKER_READY_TIMEOUT_S) is None:
                raise AssertionError(f"worker {self.name} not ready:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool) at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        """Warm shutdown (SIGTERM), then SIGKILL anything left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def start_worker(
    queue_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers (ready when returned); all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(concurrency: int = 1, extra: list[str] | None = None, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess({**queue_env, **(env or {})}, tmp_path, concurrency, extra or [])
        started.append(worker)
        worker.wait_ready(redis_client)
        return worker

    yield start
    for worker in started:
        worker.stop()
