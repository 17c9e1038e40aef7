"""Redis with Sentinels: the primary SIGKILLed in the middle of a bulk job; the Sentinels promote the replica and
every process (the worker's consumer, its pool, the waiting producer, one-text clients) finds the new primary by
itself. The job's output is still exact: every input once, in order (a chunk may run twice). make soak: three
failovers in one job of 100,000 texts (the killed server rejoins as a replica before the next)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from lepton_runtime.jobs.schemas import JobStatus
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, WORKER_READY_TIMEOUT_S
from tests.reliability.conftest import Figures, scaled
from tests.reliability.sentinels import SERVICE, SentinelGroup
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

TEXTS = scaled(20_000, 100_000)
FAILOVERS = scaled(1, 3)
CHUNK_SIZE = 200


def test_a_primary_killed_mid_job_fails_over_and_the_output_stays_exact(
    published: ModelVersion, banking: LabelledTexts, tmp_path: Path, figures: Figures
) -> None:
    group = SentinelGroup(tmp_path / "redis")
    group.start()
    models = published.path.parent.parent
    env = {key: value for key, value in os.environ.items() if key != "LEPTON_REDIS_URL"}
    # time limits above a failover's few seconds: a chunk whose writes wait for the new primary is not a hung task
    limits = {**TEST_LIMITS, "LEPTON_TASK_SOFT_TIME_LIMIT_S": "60", "LEPTON_TASK_TIME_LIMIT_S": "90"}
    env = {**env, **limits, **group.env, "LEPTON_MODEL_DIR": str(models)}
    settings = LeptonSettings(
        redis_sentinels=group.env["LEPTON_REDIS_SENTINELS"], redis_service=SERVICE,
        redis_password=SecretStr(group.password), redis_sentinel_password=SecretStr(group.sentinel_password),
        model_dir=models,
    )  # fmt: skip
    worker = WorkerProcess(env, tmp_path / "worker.log", processes=2,
                           arguments=["--threads", "1", "--warm", "tiny@production"], cwd=REPO_ROOT)  # fmt: skip
    try:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        texts = (banking.texts * (TEXTS // len(banking.texts) + 1))[:TEXTS]
        with LeptonClient(settings) as client:
            before = client.classify(["a fine film"], model="tiny").wait(30)
            job = client.submit_bulk(texts, model="tiny", chunk_size=CHUNK_SIZE)
            killed: list[float] = []
            promoted: list[int] = []

            def kill_primaries_along_the_job(status: JobStatus) -> None:
                """The k-th kill once k/(FAILOVERS + 1) of the chunks are done; before the next one, the
                failover completes and the killed server rejoins as a replica (the job runs on meanwhile)."""
                if len(killed) < FAILOVERS and status.done_chunks >= status.total_chunks * (len(killed) + 1) // (
                    FAILOVERS + 1
                ):
                    if killed:
                        group.rejoin()
                    standing_by = group.replica.port
                    group.kill_primary()
                    killed.append(time.monotonic())
                    promoted.append(group.wait_for_failover())
                    assert promoted[-1] == standing_by

            status = client.jobs.wait(job.id, 600, on_progress=kill_primaries_along_the_job, progress_interval_s=0.05)
            assert len(killed) == FAILOVERS, f"the job finished after {len(killed)} of {FAILOVERS} failovers"
            assert status.state == "succeeded", (status.failures, worker.log_tail())
            done_s = time.monotonic() - killed[-1]
            rows = list(client.results(job.id))
            after = client.classify(["a fine film"], model="tiny").wait(30)
            runs = client.jobs.chunk_runs(job.id)
        assert [row["id"] for row in rows] == [str(i) for i in range(TEXTS)], "every input once, in order"
        assert all("label" in row for row in rows)
        assert after[0].label == before[0].label, "one-text requests are answered by the new primary's fleet"
        assert worker.process.poll() is None, "the worker found the new primary instead of dying"
    finally:
        worker.stop()
        group.stop()
    section = "Redis failover (Sentinel)"
    figures.add(section, f"primary SIGKILLed {FAILOVERS}x mid-job; replica promoted by 3 Sentinels each time",
                f"job done {done_s:.1f} s after the last kill")  # fmt: skip
    figures.add(section, "inputs answered exactly once, in order", f"{TEXTS:,} of {TEXTS:,}")
    figures.add(section, "chunks run more than once", sum(count > 1 for count in runs.values()))
