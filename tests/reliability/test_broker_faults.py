"""Broker faults: Redis (append-only file on) down for 8 seconds in the middle of a bulk job (make soak: three
outages of 30 seconds); the worker and the waiting producer both reconnect by themselves, and the job completes
with every input exactly once. Without persistence the same outage ends the wait at once with a reason."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from lepton_runtime.errors import JobNotFoundError
from lepton_runtime.jobs.schemas import JobStatus
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, WORKER_READY_TIMEOUT_S, free_port, take_message
from tests.reliability.conftest import Figures, scaled
from workers.embedded import LocalRedis
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

TEXTS = scaled(6000, 20_000)
CHUNK_SIZE = 50
# How long Redis stays down: longer than redis-py retries one command, so the wait must reconnect by itself.
OUTAGE_S = scaled(8.0, 30.0)
# Done chunks at which Redis goes down, one outage after the other.
OUTAGES_AT = scaled((10,), (10, 120, 250))


def outages_at(
    server: LocalRedis, done_chunks: tuple[int, ...], outages: list[threading.Timer]
) -> Callable[[JobStatus], None]:
    """A progress callback that stops Redis as the job passes each of ``done_chunks``, restarting it
    ``OUTAGE_S`` later (one outage at a time)."""

    def stop_midway(status: JobStatus) -> None:
        if len(outages) == len(done_chunks) or (outages and outages[-1].is_alive()):
            return
        if status.done_chunks >= done_chunks[len(outages)]:
            server.stop()  # SHUTDOWN: the append-only file (if on) is flushed
            outages.append(timer := threading.Timer(OUTAGE_S, server.start))
            timer.start()

    return stop_midway


def test_a_redis_restart_mid_job_loses_nothing(
    published: ModelVersion, banking: LabelledTexts, tmp_path: Path, figures: Figures
) -> None:
    server = LocalRedis(free_port(), tmp_path / "redis", appendonly=True)
    url = server.start()
    env = {**os.environ, **TEST_LIMITS, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(published.path.parent.parent)}
    settings = LeptonSettings(redis_url=SecretStr(url), model_dir=published.path.parent.parent)
    worker = WorkerProcess(env, tmp_path / "worker.log", processes=2,
                           arguments=["--threads", "1", "--warm", "tiny@production"], cwd=REPO_ROOT)  # fmt: skip
    try:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        texts = (banking.texts * (TEXTS // len(banking.texts) + 1))[:TEXTS]
        with LeptonClient(settings) as client:
            job = client.submit_bulk(texts, model="tiny", chunk_size=CHUNK_SIZE)
            outages: list[threading.Timer] = []
            outage = outages_at(server, OUTAGES_AT, outages)
            status = client.jobs.wait(job.id, 600, on_progress=outage, progress_interval_s=0.05)
            for timer in outages:
                timer.join()
            assert len(outages) == len(OUTAGES_AT), "every outage happened while the job ran"
            assert status.state == "succeeded", (status.failures, worker.log_tail())
            rows = list(client.results(job.id))
        assert [row["id"] for row in rows] == [str(i) for i in range(TEXTS)]
        assert all("label" in row for row in rows)
        assert worker.process.poll() is None, "the worker reconnected instead of dying"
    finally:
        worker.stop()
        server.stop()
    section = "Broker faults"
    figures.add(section, "Redis outages survived (append-only file on)", f"{len(OUTAGES_AT)}, {OUTAGE_S:.0f} s each")
    figures.add(section, "inputs answered exactly once, in order", f"{TEXTS:,} of {TEXTS:,}")
    figures.add(section, "worker and waiting producer reconnected by themselves", "yes, same processes")


def test_without_persistence_a_restart_fails_the_job_clearly_instead_of_hanging(
    published: ModelVersion, banking: LabelledTexts, tmp_path: Path, figures: Figures
) -> None:
    server = LocalRedis(free_port(), tmp_path / "redis", appendonly=False)
    url = server.start()
    env = {**os.environ, **TEST_LIMITS, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(published.path.parent.parent)}
    settings = LeptonSettings(redis_url=SecretStr(url), model_dir=published.path.parent.parent)
    worker = WorkerProcess(env, tmp_path / "worker.log", processes=1,
                           arguments=["--threads", "1", "--warm", "tiny@production"], cwd=REPO_ROOT)  # fmt: skip
    try:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        with LeptonClient(settings) as client:
            job = client.submit_bulk((banking.texts * 2)[:3000], model="tiny", chunk_size=50)
            outages: list[threading.Timer] = []
            outage = outages_at(server, (5,), outages)
            with pytest.raises(JobNotFoundError, match="append-only file"):  # after the outage, not at the timeout
                client.jobs.wait(job.id, 300, on_progress=outage, progress_interval_s=0.05)
            outages[0].join()
        assert worker.process.poll() is None, "the worker reconnected instead of dying"
    finally:
        worker.stop()
        server.stop()
    figures.add(
        "Broker faults",
        "Redis restarted empty (no persistence)",
        "the wait ends at once: JobNotFoundError naming the append-only file",
    )


def test_a_chunk_message_the_broker_lost_is_sent_again_and_the_job_finishes(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    redis_client: redis.Redis,
    banking: LabelledTexts,
    figures: Figures,
) -> None:
    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(banking.texts[:800], model="tiny", chunk_size=100)
        take_message(redis_client, job.id, 3)  # as kombu loses one popped just as Redis goes away
        worker = start_worker()
        started_s = time.monotonic()
        status = client.jobs.wait(job.id, 120)
        assert status.state == "succeeded", status.failures
        assert [row["id"] for row in client.results(job.id)] == [str(i) for i in range(800)]
        assert client.jobs.chunk_runs(job.id) == dict.fromkeys(range(8), 1)
    assert "sending them again" in worker.log_tail(20_000)
    figures.add(
        "Broker faults",
        "a chunk message lost by the broker (popped, never recorded as unacknowledged)",
        f"sent again by the lost-chunk sweep; job exact after {time.monotonic() - started_s:.0f} s",
    )
