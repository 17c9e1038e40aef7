"""Broker faults, short version: Redis (append-only file on) restarted in the middle of a bulk job; the worker
reconnects by itself, a producer reconnects, and the job completes with every input exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from lepton_runtime.errors import BrokerUnavailableError, JobNotFoundError
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


class Restarted(Exception):
    """Raised from the progress callback once Redis went down and came back."""


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

            def restart_midway(status: JobStatus) -> None:
                if status.done_chunks >= 10:
                    server.stop()  # SHUTDOWN: the append-only file is flushed
                    server.start()
                    raise Restarted

            with pytest.raises((Restarted, BrokerUnavailableError)):
                client.jobs.wait(job.id, 120, on_progress=restart_midway, progress_interval_s=0.05)
        with LeptonClient(settings) as client:  # a producer coming back after the outage
            status = client.wait(job.id, 300)
            assert status.state == "succeeded", (status.failures, worker.log_tail())
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

            def restart_midway(status: JobStatus) -> None:
                if status.done_chunks >= 5:
                    server.stop()
                    server.start()  # empty: nothing was persisted
                    raise Restarted

            with pytest.raises((Restarted, BrokerUnavailableError)):
                client.jobs.wait(job.id, 120, on_progress=restart_midway, progress_interval_s=0.05)
        with LeptonClient(settings) as client, pytest.raises(JobNotFoundError, match="append-only file"):
            client.wait(job.id, 60)  # answered at once, not after the timeout
        assert worker.process.poll() is None, "the worker reconnected instead of dying"
    finally:
        worker.stop()
        server.stop()
