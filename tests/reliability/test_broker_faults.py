"""Broker faults, short version: Redis (append-only file on) down for a few seconds in the middle of a bulk job;
the worker and the waiting producer both reconnect by themselves, and the job completes with every input exactly
once. Without persistence the same outage ends the wait at once with a reason, not a hang."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from lepton_runtime.errors import JobNotFoundError
from lepton_runtime.jobs.schemas import JobStatus
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, WORKER_READY_TIMEOUT_S, free_port
from workers.embedded import LocalRedis
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

TEXTS = 6000
# How long Redis stays down: longer than redis-py retries one command, so the wait must reconnect by itself.
OUTAGE_S = 8.0


def outage_after(server: LocalRedis, done_chunks: int, outages: list[threading.Timer]) -> Callable[[JobStatus], None]:
    """A progress callback that stops Redis once ``done_chunks`` are done and starts it ``OUTAGE_S`` later."""

    def stop_midway(status: JobStatus) -> None:
        if not outages and status.done_chunks >= done_chunks:
            server.stop()  # SHUTDOWN: the append-only file (if on) is flushed
            outages.append(timer := threading.Timer(OUTAGE_S, server.start))
            timer.start()

    return stop_midway


def test_a_redis_restart_mid_job_loses_nothing(published: ModelVersion, sst2: LabelledTexts, tmp_path: Path) -> None:
    server = LocalRedis(free_port(), tmp_path / "redis", appendonly=True)
    url = server.start()
    env = {**os.environ, **TEST_LIMITS, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(published.path.parent.parent)}
    settings = LeptonSettings(redis_url=SecretStr(url), model_dir=published.path.parent.parent)
    worker = WorkerProcess(env, tmp_path / "worker.log", processes=2,
                           arguments=["--threads", "1", "--warm", "tiny@production"], cwd=REPO_ROOT)  # fmt: skip
    try:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        texts = (sst2.texts * 4)[:TEXTS]
        with LeptonClient(settings) as client:
            job = client.submit_bulk(texts, model="tiny", chunk_size=50)
            outages: list[threading.Timer] = []
            outage = outage_after(server, 10, outages)
            status = client.jobs.wait(job.id, 300, on_progress=outage, progress_interval_s=0.05)
            outages[0].join()
            assert status.state == "succeeded", (status.failures, worker.log_tail())
            assert status.done_chunks > 10, "the job was still running when Redis went down"
            rows = list(client.results(job.id))
        assert [row["id"] for row in rows] == [str(i) for i in range(TEXTS)]
        assert all("label" in row for row in rows)
        assert worker.process.poll() is None, "the worker reconnected instead of dying"
    finally:
        worker.stop()
        server.stop()


def test_without_persistence_a_restart_fails_the_job_clearly_instead_of_hanging(
    published: ModelVersion, sst2: LabelledTexts, tmp_path: Path
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
            job = client.submit_bulk((sst2.texts * 2)[:3000], model="tiny", chunk_size=50)
            outages: list[threading.Timer] = []
            with pytest.raises(JobNotFoundError, match="append-only file"):  # after the outage, not at the timeout
                client.jobs.wait(job.id, 300, on_progress=outage_after(server, 5, outages), progress_interval_s=0.05)
            outages[0].join()
        assert worker.process.poll() is None, "the worker reconnected instead of dying"
    finally:
        worker.stop()
        server.stop()
