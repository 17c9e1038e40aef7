"""Worker faults: pool processes SIGKILLed at ten moments across a 20,000-text job (make soak: 40 across
100,000), then the worker stopped warm (SIGTERM) in the middle of another: every input answered exactly once,
in order, both jobs succeeded, and no message is left unacknowledged in Redis."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

import psutil
import pytest
import redis

from lepton_runtime.constants import REDIS_KEY_PREFIX
from lepton_runtime.inference import Engine
from lepton_runtime.jobs.dead_letters import DeadLetterStore
from lepton_runtime.jobs.schemas import JobStatus
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.reliability.conftest import Figures, scaled
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

KILLS = scaled(10, 40)
TEXTS = scaled(20_000, 100_000)
CHUNK_SIZE = 100
# Kills spread over the first half of the job's chunks.
CHUNKS_BETWEEN_KILLS = TEXTS // CHUNK_SIZE // (2 * KILLS)


def test_ten_kills_and_a_warm_shutdown_lose_and_duplicate_nothing(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    redis_client: redis.Redis,
    banking: LabelledTexts,
    figures: Figures,
) -> None:
    started_s = time.monotonic()
    texts = (banking.texts * (TEXTS // len(banking.texts) + 1))[:TEXTS]
    worker = start_worker(concurrency=2, env={"LEPTON_MAX_DELIVERIES": str(KILLS + 1)})
    chooser = random.Random(7)
    killed: list[int] = []
    in_flight: list[int] = []
    unacked = f"{REDIS_KEY_PREFIX}unacked"

    def kill_now_and_then(status: JobStatus) -> None:  # called as the job's progress is published
        in_flight.append(redis_client.hlen(unacked))  # messages taken by the worker, not yet acknowledged
        if len(killed) < KILLS and status.done_chunks >= CHUNKS_BETWEEN_KILLS * (len(killed) + 1):
            pool = psutil.Process(worker.process.pid).children()
            if pool:
                victim = chooser.choice(pool)
                victim.kill()  # SIGKILL, mid-chunk or between chunks
                killed.append(victim.pid)

    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(texts, model="tiny", chunk_size=CHUNK_SIZE)
        status = client.jobs.wait(job.id, 600, on_progress=kill_now_and_then, progress_interval_s=0.05)
        assert len(killed) == KILLS, f"only {len(killed)} kills happened before the job finished"
        assert status.state == "succeeded", status.failures
        rows = list(client.results(job.id))
        assert [row["id"] for row in rows] == [str(i) for i in range(TEXTS)]
        assert all("label" in row for row in rows)
        assert worker.process.poll() is None, "the worker outlives its pool processes"

        # warm shutdown in the middle of a second job, then a fresh worker finishes it
        reruns = sum(client.jobs.chunk_runs(job.id).values()) - TEXTS // CHUNK_SIZE
        second = client.submit_bulk(texts[:5000], model="tiny", chunk_size=CHUNK_SIZE)
        stopped: list[WorkerProcess] = []

        def stop_warm_midway(status: JobStatus) -> None:
            if not stopped and status.done_chunks >= 5:
                worker.process.send_signal(signal.SIGTERM)
                assert worker.process.wait(60) == 0, "a warm shutdown finishes its tasks and exits cleanly"
                stopped.append(start_worker())

        status = client.jobs.wait(second.id, 300, on_progress=stop_warm_midway, progress_interval_s=0.05)
        assert stopped and status.state == "succeeded"
        assert [row["id"] for row in client.results(second.id)] == [str(i) for i in range(5000)]
    assert max(in_flight) > 0, f"{unacked} should hold the messages in flight while the job runs"
    assert redis_client.hlen(unacked) == 0, "no message is left unacknowledged"
    assert redis_client.zcard(f"{REDIS_KEY_PREFIX}unacked_index") == 0
    section = "Worker faults"
    figures.add(section, "SIGKILLs of pool processes survived", f"{KILLS} over one job of {TEXTS:,} texts")
    figures.add(section, "chunks run again after a kill", reruns)
    figures.add(section, "warm shutdowns (SIGTERM) mid-job survived", "1, over a job of 5,000 texts")
    figures.add(section, "inputs answered exactly once, in order", f"{TEXTS + 5000:,} of {TEXTS + 5000:,}")
    figures.add(section, "messages left unacknowledged", 0)
    figures.add(section, "wall time", f"{time.monotonic() - started_s:.0f} s")


def test_a_pool_process_over_its_memory_budget_is_replaced_and_the_job_finishes(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings, banking: LabelledTexts, figures: Figures
) -> None:
    worker = start_worker(extra=["--max-memory-mb", "64"])  # below what a process with a model needs
    (first,) = psutil.Process(worker.process.pid).children()
    assert first.memory_info().rss > 64 * 1024 * 1024
    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(banking.texts[:1000], model="tiny", chunk_size=100)
        assert job.wait(300).state == "succeeded"
        assert [row["id"] for row in client.results(job.id)] == [str(i) for i in range(1000)]
        assert client.jobs.chunk_runs(job.id) == dict.fromkeys(range(10), 1), "recycling is not a failure"
    assert not first.is_running(), "the process over budget was replaced after its task"
    assert worker.process.poll() is None
    figures.add("Worker faults", "pool processes over a 64 MB memory budget replaced", "yes; job of 1,000 texts exact")


ENTITY_KILLS = 5


def test_an_entities_job_under_five_kills_answers_every_text_once_with_the_engines_entities(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    published_entities: ModelVersion,
    banking: LabelledTexts,
    figures: Figures,
) -> None:
    texts = [f"{text} ({i})" for i, text in enumerate(banking.texts * (TEXTS // len(banking.texts) + 1))][:TEXTS]
    worker = start_worker(concurrency=2, env={"LEPTON_MAX_DELIVERIES": str(ENTITY_KILLS + 1)})
    chooser = random.Random(11)
    killed: list[int] = []
    between = TEXTS // CHUNK_SIZE // (2 * ENTITY_KILLS)

    def kill_now_and_then(status: JobStatus) -> None:
        if len(killed) < ENTITY_KILLS and status.done_chunks >= between * (len(killed) + 1):
            pool = psutil.Process(worker.process.pid).children()
            if pool:
                victim = chooser.choice(pool)
                victim.kill()
                killed.append(victim.pid)

    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(texts, model="tiny-ner", chunk_size=CHUNK_SIZE)
        status = client.jobs.wait(job.id, 600, on_progress=kill_now_and_then, progress_interval_s=0.05)
        assert len(killed) == ENTITY_KILLS and status.state == "succeeded", status.failures
        rows = list(client.results(job.id))
    assert [row["id"] for row in rows] == [str(i) for i in range(TEXTS)]
    sample = chooser.sample(range(TEXTS), 200)
    expected = Engine(published_entities.path, intra_op_threads=1).entities([texts[i] for i in sample])
    assert [rows[i]["entities"] for i in sample] == [[e.as_dict() for e in found] for found in expected]
    figures.add(
        "Worker faults", "SIGKILLs during an entities job survived", f"{ENTITY_KILLS} over {TEXTS:,} texts, exact"
    )


FAULTS = ["--include", "tests.workers.faults"]
# The default lease and restore interval: a dead worker's messages are back within 25 s of its last renewal.
LEASE_DEFAULTS = {"LEPTON_VISIBILITY_TIMEOUT_S": "20", "LEPTON_RESTORE_INTERVAL_S": "5"}


def test_a_whole_worker_killed_mid_chunk_gives_its_chunk_back_within_its_lease(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    redis_client: redis.Redis,
    banking: LabelledTexts,
    figures: Figures,
) -> None:
    """As a user saw it: a 5,000-text job whose worker is SIGKILLed (main process and pool) mid-chunk, while a
    second worker idles. The chunk comes back in seconds (the default lease), not after minutes."""
    from tests.workers.faults import HANG_ONCE, HANGING_KEY

    workers = [start_worker(extra=FAULTS, env=LEASE_DEFAULTS) for _ in range(2)]
    texts = (banking.texts * 3)[:5000]
    texts[2500] = HANG_ONCE  # the first process to meet it hangs inside that chunk; the next one runs it
    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(texts, model="tiny", chunk_size=500)
        hanging = redis_client.blpop([HANGING_KEY], timeout=120)
        assert hanging, [worker.log_tail() for worker in workers]
        pool_pid = int(hanging[1])
        (holder,) = [w for w in workers if pool_pid in [c.pid for c in psutil.Process(w.process.pid).children()]]
        holder.kill()  # SIGKILL of the whole worker: nothing of it acknowledges, gives back or renews anything
        killed_at = time.monotonic()
        status = job.wait(120)
        back_in_s = time.monotonic() - killed_at
        assert status.state == "succeeded"
        assert [row["id"] for row in client.results(job.id)] == [str(i) for i in range(5000)]
        runs = client.jobs.chunk_runs(job.id)
        assert sorted(runs.values()) == [1] * 9 + [2], "the killed chunk ran once more, nothing else did"
    assert back_in_s <= 30, f"the killed worker's chunk took {back_in_s:.1f} s to finish elsewhere (lease 20 s)"
    figures.add(
        "Worker faults", "whole worker SIGKILLed mid-chunk, a second one idle: job done after", f"{back_in_s:.1f} s"
    )


def test_a_task_longer_than_the_lease_on_a_live_worker_is_never_started_twice(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    banking: LabelledTexts,
    figures: Figures,
) -> None:
    """A chunk that takes 2.5 leases on one worker while another idles: its holder renews it, nothing runs twice."""
    from tests.workers.faults import SLOW

    short_lease = {"LEPTON_VISIBILITY_TIMEOUT_S": "2", "LEPTON_RESTORE_INTERVAL_S": "1", "LEPTON_TEST_SLOW_S": "5"}
    limits = {"LEPTON_TASK_SOFT_TIME_LIMIT_S": "20", "LEPTON_TASK_TIME_LIMIT_S": "25"}
    for _ in range(2):
        start_worker(extra=FAULTS, env={**short_lease, **limits})
    texts = banking.texts[:400]
    for index in (0, 100, 200, 300):
        texts[index] = SLOW  # the chunk (or chunks) holding it take 5 s
    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(texts, model="tiny", chunk_size=100)
        assert job.wait(120).state == "succeeded"
        assert client.jobs.chunk_runs(job.id) == dict.fromkeys(range(4), 1)
    figures.add("Worker faults", "chunks of up to 5 s under a 2 s lease on live workers, started twice", "0 of 4")


def test_a_worker_paused_past_its_lease_and_continued_writes_nothing_twice(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    redis_client: redis.Redis,
    banking: LabelledTexts,
    figures: Figures,
) -> None:
    """A whole worker SIGSTOPped in the middle of a chunk (a VM paused, a process frozen) for longer than its
    lease: the other worker runs the chunk and finishes the job; continued, the paused one finishes its own copy
    of the chunk, and the job's output, counters and dead letters do not change."""
    from tests.workers.faults import SLOW, SLOW_KEY

    short_lease = {"LEPTON_VISIBILITY_TIMEOUT_S": "2", "LEPTON_RESTORE_INTERVAL_S": "1", "LEPTON_TEST_SLOW_S": "3"}
    limits = {"LEPTON_TASK_SOFT_TIME_LIMIT_S": "20", "LEPTON_TASK_TIME_LIMIT_S": "25"}
    workers = [start_worker(extra=FAULTS, env={**short_lease, **limits}) for _ in range(2)]
    texts = banking.texts[:1000]
    texts[150] = SLOW  # its chunk takes 3 s: long enough to be caught in the middle
    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(texts, model="tiny", chunk_size=100)
        slow = redis_client.blpop([SLOW_KEY], timeout=120)
        assert slow, [worker.log_tail() for worker in workers]
        (paused,) = [w for w in workers if int(slow[1]) in [c.pid for c in psutil.Process(w.process.pid).children()]]
        os.killpg(paused.pid, signal.SIGSTOP)  # main process and pool: no renewals, no acknowledgement
        paused_at = time.monotonic()
        try:
            status = job.wait(120)  # the other worker runs every chunk, the paused one's too
            done_s = time.monotonic() - paused_at
            before = (status, list(client.results(job.id)))
            runs = client.jobs.chunk_runs(job.id)
        finally:
            os.killpg(paused.pid, signal.SIGCONT)
        assert status.state == "succeeded"
        (held,) = [chunk for chunk, count in runs.items() if count == 2]  # the paused chunk ran again, alone
        held_task = f"{job.id}.chunk{held}."
        deadline = time.monotonic() + 60
        while not any(held_task in line and "succeeded" in line for line in paused.log_tail(50_000).splitlines()):
            assert time.monotonic() < deadline, paused.log_tail()
            time.sleep(0.1)  # the continued process finishing its copy of the chunk: nothing to wait on but its log
        after = (client.jobs.status(job.id), list(client.results(job.id)))
        assert client.jobs.chunk_runs(job.id) == runs
    assert [row["id"] for row in after[1]] == [str(i) for i in range(1000)], "every input once, in order"
    assert redis_client.hlen(f"{REDIS_KEY_PREFIX}unacked") == 0
    assert after == before, "the paused worker's late copy of the chunk changed nothing"
    assert DeadLetterStore(redis_client).list() == []
    assert all(worker.process.poll() is None for worker in workers)
    figures.add(
        "Worker faults",
        "whole worker SIGSTOPped mid-chunk past its 2 s lease, then continued",
        f"job done by the other in {done_s:.1f} s; the late copy changed nothing",
    )
