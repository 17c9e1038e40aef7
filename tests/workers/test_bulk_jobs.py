"""Bulk jobs through real Redis and real worker processes: exactly-once output, crashes, poison, retry, cancel."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from lepton_runtime.errors import JobStateError
from lepton_runtime.inference import Engine, ItemError, Prediction
from lepton_runtime.jobs import DeadLetterStore
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import WorkerProcess
from tests.workers.faults import HANG, HANGING_KEY, POISON

pytestmark = pytest.mark.slow
FAULTS = ["--include", "tests.workers.faults"]
WAIT_S = 180


@pytest.fixture
def client(queue_settings: LeptonSettings) -> LeptonClient:
    return LeptonClient(queue_settings)


def _ids(rows: list[dict[str, object]]) -> list[str]:
    return [str(row["id"]) for row in rows]


def test_a_file_comes_back_in_input_order_with_the_same_predictions_as_in_process(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    sst2: LabelledTexts,
    published: ModelVersion,
    tmp_path: Path,
) -> None:
    texts = sst2.texts[:1000]
    texts[10] = "   "  # an invalid item: an error row in its place, the job still succeeds
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    start_worker(concurrency=2)

    job = client.submit_bulk(source, model="tiny", output=tmp_path / "out.jsonl", chunk_size=64)
    status = job.wait(WAIT_S)

    assert status.state == "succeeded"
    assert (status.done_texts, status.total_chunks, status.done_chunks, status.error_items) == (1000, 16, 16, 1)
    assert status.model_version == "tiny@1"
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert _ids(rows) == [f"r{i}" for i in range(1000)]
    assert rows[10]["error"]["code"] == "invalid_input"
    engine = Engine(published.path, intra_op_threads=1)  # the same chunks, in process
    expected: list[Prediction | ItemError] = []
    for start in range(0, 1000, 64):
        expected += engine.classify(texts[start : start + 64], errors="return")
    for row, want in zip(rows, expected, strict=True):
        if isinstance(want, ItemError):
            assert "error" in row
            continue
        assert row["label"] == want.label
        assert row["score"] == pytest.approx(want.score, abs=1e-5)
        assert row["model"] == want.model.as_dict()


def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    sst2: LabelledTexts,
) -> None:
    texts = sst2.texts * 3  # 5,760 real sentences
    texts[1234] = HANG  # chunk 12 of 100-text chunks: the first worker hangs inside it
    first = start_worker(extra=FAULTS)
    job = client.submit_bulk(texts, model="tiny", chunk_size=100)

    assert redis_client.blpop([HANGING_KEY], timeout=WAIT_S), first.log()
    during = client.status(job.id)
    assert during.state == "running" and 0 < during.done_chunks < during.total_chunks
    first.kill()  # SIGKILL, main process and pool: its chunk is unacknowledged
    start_worker()  # a second worker, without the fault, finishes the job

    status = job.wait(WAIT_S)
    assert status.state == "succeeded"
    assert status.done_texts == len(texts) == 5760
    rows = list(client.results(job.id))
    assert _ids(rows) == [str(i) for i in range(len(texts))]  # every input once, in order
    assert all("label" in row for row in rows)
    runs = client.jobs.chunk_runs(job.id)
    assert runs[12] == 2  # redelivered after the visibility timeout
    assert {chunk: count for chunk, count in runs.items() if chunk != 12} == {c: 1 for c in range(58) if c != 12}


def test_a_poison_chunk_is_dead_lettered_and_retry_reruns_only_it(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    sst2: LabelledTexts,
) -> None:
    texts = sst2.texts[:1000]
    texts[350] = POISON  # chunk 3 kills the process that runs it, every time
    worker = start_worker(extra=FAULTS)
    poisoned = client.submit_bulk(texts, model="tiny", chunk_size=100)
    healthy = client.submit_bulk(sst2.texts[1000:1300], model="tiny", chunk_size=100)

    assert healthy.wait(WAIT_S).state == "succeeded"  # other work is not held up
    status = poisoned.wait(WAIT_S)
    assert status.state == "failed"
    assert (status.done_chunks, status.failed_chunks) == (9, 1)
    assert [(f.chunk, f.code) for f in status.failures] == [(3, "worker_lost")]
    assert worker.process.poll() is None  # the pool replaced its killed processes
    (letter,) = DeadLetterStore(redis_client).list()
    assert (letter.task, letter.args, letter.code, letter.attempts) == (
        "lepton.bulk.chunk",
        [poisoned.id, 3],
        "worker_lost",
        3,
    )
    assert letter.queue == "lepton.inference" and letter.payload_ref and letter.payload_ref.endswith("#3")
    assert client.jobs.chunk_runs(poisoned.id) == {**{c: 1 for c in range(10)}, 3: 3}
    rows = list(client.results(poisoned.id))  # a failed job still answers every input once
    assert _ids(rows) == [str(i) for i in range(1000)]
    assert {row["error"]["code"] for row in rows[300:400]} == {"worker_lost"}

    worker.stop()
    start_worker()  # the cause is gone
    assert client.retry(poisoned.id) == [3]
    status = poisoned.wait(WAIT_S)
    assert status.state == "succeeded" and status.failed_chunks == 0
    assert client.jobs.chunk_runs(poisoned.id) == {**{c: 1 for c in range(10)}, 3: 4}  # only chunk 3 ran again
    assert all("label" in row for row in client.results(poisoned.id))
    assert client.retry(poisoned.id) == []


def test_cancel_holds_across_a_worker_restart(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    sst2: LabelledTexts,
) -> None:
    texts = sst2.texts[:1000]
    texts[250] = HANG  # the first worker is inside chunk 2 when the job is cancelled
    first = start_worker(extra=FAULTS)
    job = client.submit_bulk(texts, model="tiny", chunk_size=100)
    assert redis_client.blpop([HANGING_KEY], timeout=WAIT_S), first.log()

    assert client.cancel(job.id).state == "cancelled"
    first.kill()
    start_worker()  # a fresh worker: nothing of the cancel lives in worker memory
    later = client.submit_bulk(sst2.texts[:10], model="tiny")  # queued behind the cancelled chunks
    assert later.wait(WAIT_S).state == "succeeded"

    status = client.status(job.id)
    assert status.state == "cancelled"
    runs = client.jobs.chunk_runs(job.id)
    assert all(runs.get(chunk, 0) == 0 for chunk in range(3, 10))  # never started after the cancel
    assert status.done_chunks == 2
    with pytest.raises(JobStateError):
        list(client.results(job.id))
    with pytest.raises(JobStateError):
        client.retry(job.id)


def test_an_idempotent_resubmission_returns_the_same_job_and_runs_it_once(
    start_worker: Callable[..., WorkerProcess], client: LeptonClient, sst2: LabelledTexts
) -> None:
    first = client.submit_bulk(sst2.texts[:500], model="tiny", chunk_size=100, idempotency_key="nightly-2026-11-22")
    again = client.submit_bulk(sst2.texts[:500], model="tiny", chunk_size=100, idempotency_key="nightly-2026-11-22")
    other = client.submit_bulk(sst2.texts[:500], model="tiny", chunk_size=100, idempotency_key="nightly-2026-11-23")
    assert again.id == first.id and not again.created
    assert other.id != first.id and other.created
    start_worker()
    status = first.wait(WAIT_S)
    assert status.state == "succeeded"
    assert status.chunk_runs == status.total_chunks == 5  # enqueued once
