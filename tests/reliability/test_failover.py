"""Redis with Sentinels: the primary SIGKILLed in the middle of a bulk job; the Sentinels promote the replica and
every process (the worker's consumer, its pool, the waiting producer, one-text clients) finds the new primary by
itself. The job's output is still exact: every input once, in order (a chunk may run twice). make soak: three
failovers in one job of 100,000 texts (the killed server rejoins as a replica before the next)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lepton_runtime.constants import INFERENCE_QUEUE
from lepton_runtime.jobs.keys import JobKeys, TrainingKeys, queue_lists
from lepton_runtime.jobs.schemas import JobStatus
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, WORKER_READY_TIMEOUT_S, labelled_sample
from tests.reliability.conftest import Figures, scaled
from tests.reliability.sentinels import SentinelGroup
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

TEXTS = scaled(20_000, 100_000)
FAILOVERS = scaled(1, 3)
CHUNK_SIZE = 200


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A primary, its replica and three Sentinels, stopped after the test."""
    group = SentinelGroup(tmp_path / "redis")
    group.start()
    yield group
    group.stop()


@pytest.fixture
def worker(group: SentinelGroup, published: ModelVersion, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A two-process worker of the group (no LEPTON_REDIS_URL: it asks the Sentinels), ready."""
    env = {key: value for key, value in os.environ.items() if key != "LEPTON_REDIS_URL"}
    # time limits above a failover's few seconds: a chunk whose writes wait for the new primary is not a hung task
    limits = {**TEST_LIMITS, "LEPTON_TASK_SOFT_TIME_LIMIT_S": "60", "LEPTON_TASK_TIME_LIMIT_S": "90"}
    env = {**env, **limits, **group.env, "LEPTON_MODEL_DIR": str(published.path.parent.parent)}
    worker = WorkerProcess(env, tmp_path / "worker.log", processes=2,
                           arguments=["--threads", "1", "--warm", "tiny@production"], cwd=REPO_ROOT)  # fmt: skip
    try:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        yield worker
    finally:
        worker.stop()


def test_a_primary_killed_mid_job_fails_over_and_the_output_stays_exact(
    group: SentinelGroup, worker: WorkerProcess, published: ModelVersion, banking: LabelledTexts, figures: Figures
) -> None:
    settings = group.settings(model_dir=published.path.parent.parent)
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
    section = "Redis failover (Sentinel)"
    figures.add(section, f"primary SIGKILLed {FAILOVERS}x mid-job; replica promoted by 3 Sentinels each time",
                f"job done {done_s:.1f} s after the last kill")  # fmt: skip
    figures.add(section, "inputs answered exactly once, in order", f"{TEXTS:,} of {TEXTS:,}")
    figures.add(section, "chunks run more than once", sum(count > 1 for count in runs.values()))


def test_a_failover_that_loses_the_last_writes_still_leaves_the_output_exact(
    group: SentinelGroup, worker: WorkerProcess, published: ModelVersion, banking: LabelledTexts, figures: Figures
) -> None:
    """Replication is asynchronous: the replica is paused while the primary accepts more chunks (rows, counters,
    acknowledgements), then the primary is killed and the replica, behind it, promoted. What the lost writes had
    recorded runs again (a chunk whose message is gone is sent again by the sweep); the output is still exact."""
    settings = group.settings(model_dir=published.path.parent.parent)
    texts = (banking.texts * (TEXTS // len(banking.texts) + 1))[:TEXTS]
    with LeptonClient(settings) as client:
        job = client.submit_bulk(texts, model="tiny", chunk_size=CHUNK_SIZE)
        lost: list[tuple[int, int]] = []  # (bytes of writes lost, chunks done on the primary and not replicated)

        def lose_writes_then_fail_over(status: JobStatus) -> None:
            if lost or status.done_chunks < status.total_chunks // 3:
                return
            group.cut_and_pause_replica()
            try:
                deadline = time.monotonic() + 30
                while (ahead := client.jobs.status(job.id).done_chunks) < status.done_chunks + 5:
                    assert time.monotonic() < deadline, "the primary accepted no chunk while the replica slept"
                written = group.replication_offset(group.primary)
                group.kill_primary()
            finally:
                group.continue_replica()
            lost.append((written - group.replication_offset(group.replica), ahead - status.done_chunks))
            group.wait_for_failover()

        status = client.jobs.wait(job.id, 600, on_progress=lose_writes_then_fail_over, progress_interval_s=0.05)
        assert lost, "the job finished before the writes could be lost"
        assert status.state == "succeeded", (status.failures, worker.log_tail())
        rows = list(client.results(job.id))
        runs = client.jobs.chunk_runs(job.id)
    lost_bytes, lost_chunks = lost[0]
    assert lost_bytes > 0, "the promoted replica missed no write: nothing was tested"
    assert [row["id"] for row in rows] == [str(i) for i in range(TEXTS)], "every input once, in order"
    assert worker.process.poll() is None
    figures.add(
        "Redis failover (Sentinel)",
        f"replica paused, primary killed {lost_chunks} chunks ahead ({lost_bytes:,} bytes of writes lost)",
        f"{TEXTS:,} of {TEXTS:,} once, in order; {sum(count > 1 for count in runs.values())} chunks run twice",
    )


def test_with_wait_replicas_a_submission_returns_once_the_replica_holds_it(
    group: SentinelGroup,
    published: ModelVersion,
    banking: LabelledTexts,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """LEPTON_REDIS_WAIT_REPLICAS=1: the id of a bulk job or a training run comes back once the replica holds it
    and its messages, so a failover right after cannot lose it; with the replica cut off, the submission waits its
    timeout and warns."""
    settings = group.settings(model_dir=published.path.parent.parent, redis_wait_replicas=1, redis_wait_timeout_ms=1500)
    with LeptonClient(settings) as client:
        job = client.submit_bulk(banking.texts[:1000], model="tiny", chunk_size=100)
        assert job.replicas == 1, "the job tells its caller that a replica held it"
        run = client.train(labelled_sample(banking, tmp_path / "train.jsonl", 0, 600), name="held", epochs=1)
        assert run.replicas == 1, "a training run tells its caller the same"
        with redis.Redis(port=group.replica.port, password=group.password, decode_responses=True) as replica:
            assert replica.hget(JobKeys(job.id).record, "enqueued_at") is not None
            sent = sum(replica.llen(key) for key in queue_lists(INFERENCE_QUEUE))
            assert sent == 4, "the messages of its first window (LEPTON_BULK_WINDOW_CHUNKS; no worker runs)"
            assert replica.exists(TrainingKeys(run.id).record), "the replica holds the training run"
        group.cut_and_pause_replica()
        try:
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="producer.client"):
                unheld = client.submit_bulk(banking.texts[:1000], model="tiny", chunk_size=100)
            waited_s = time.monotonic() - started
        finally:
            group.continue_replica()
    assert "held by 0 of 1 replicas after 1500 ms" in caplog.text
    assert unheld.replicas == 0
    assert waited_s >= 1.5
