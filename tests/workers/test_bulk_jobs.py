"""Bulk jobs through real Redis and real worker processes: exactly-once output, crashes, poison, retry, cancel."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from celery.result import AsyncResult
from click.testing import CliRunner

from lepton_runtime.cli import cli
from lepton_runtime.errors import JobStateError
from lepton_runtime.inference import Engine, ItemError, Prediction
from lepton_runtime.jobs import DeadLetterStore
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.bulk_helpers import inline_job
from tests.workers.faults import HANG, HANGING_KEY, LATE, POISON, STUCK
from workers.processes import WorkerProcess

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
    redis_client: redis.Redis,
    banking: LabelledTexts,
    published: ModelVersion,
    tmp_path: Path,
) -> None:
    texts = banking.texts[:1000]
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
    # int8 scales activations per batch: compare with the engine in process on the same chunks (input order)
    engine = Engine(published.path, intra_op_threads=1)
    expected: dict[int, Prediction | ItemError] = {}
    for start in range(0, len(texts), 64):
        positions = range(start, min(start + 64, len(texts)))
        expected |= zip(positions, engine.classify([texts[i] for i in positions], errors="return"), strict=True)
    assert sorted(expected) == list(range(1000))
    for position, row in enumerate(rows):
        want = expected[position]
        if isinstance(want, ItemError):
            assert row["error"]["code"] == want.code == "invalid_input"
            assert row["error"]["message"].startswith("text: text is empty")
            continue
        assert row["label"] == want.label
        assert row["score"] == pytest.approx(want.score, abs=1e-5)
        assert row["model"] == want.model.as_dict()


def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    banking: LabelledTexts,
) -> None:
    texts = banking.texts * 3  # 5,760 real queries
    texts[2000] = HANG  # the second window of chunks: the first worker hangs in it, after 16 chunks
    first = start_worker(extra=FAULTS)
    job = client.submit_bulk(texts, model="tiny", chunk_size=100)

    assert redis_client.blpop([HANGING_KEY], timeout=WAIT_S), first.log_tail()
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
    assert sorted(runs) == list(range(58))
    assert sorted(runs.values()) == [1] * 57 + [2]  # the killed chunk ran again after the visibility timeout


def test_a_poison_chunk_is_dead_lettered_and_retry_reruns_only_it(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    banking: LabelledTexts,
) -> None:
    texts = banking.texts[:1000]
    texts[350] = POISON  # kills the process that runs its chunk, every time
    worker = start_worker(extra=FAULTS)
    poisoned = client.submit_bulk(texts, model="tiny", chunk_size=100)
    healthy = client.submit_bulk(banking.texts[1000:1300], model="tiny", chunk_size=100)

    assert healthy.wait(WAIT_S).state == "succeeded"  # other work is not held up
    status = poisoned.wait(WAIT_S)
    assert status.state == "failed"
    assert (status.done_chunks, status.failed_chunks) == (9, 1)
    ((bad, code),) = [(f.chunk, f.code) for f in status.failures]
    assert code == "worker_lost"
    assert worker.process.poll() is None  # the pool replaced its killed processes
    (letter,) = DeadLetterStore(redis_client).list()
    assert (letter.task, letter.args, letter.code) == ("lepton.bulk.chunk", [poisoned.id, bad], "worker_lost")
    assert letter.attempts == 3
    assert letter.queue == "lepton.inference" and letter.payload_ref and letter.payload_ref.endswith(f"#{bad}")
    assert client.jobs.chunk_runs(poisoned.id) == {**{c: 1 for c in range(10)}, bad: 3}
    rows = list(client.results(poisoned.id))  # a failed job still answers every input once
    assert _ids(rows) == [str(i) for i in range(1000)]
    assert rows[350]["error"]["code"] == "worker_lost"
    assert sum("error" in row for row in rows) == 100 and sum("label" in row for row in rows) == 900

    worker.stop()
    start_worker()  # the cause is gone
    assert letter.id.startswith(f"{poisoned.id}.chunk{bad}.")  # the failed task's id, as Flower shows it
    assert client.retry(letter.id) == [bad]  # retried by that id
    assert DeadLetterStore(redis_client).list() == [], "the retry resolves the chunk's dead letter"
    status = poisoned.wait(WAIT_S)
    assert status.state == "succeeded" and status.failed_chunks == 0
    assert client.jobs.chunk_runs(poisoned.id) == {**{c: 1 for c in range(10)}, bad: 4}  # only it ran again
    assert all("label" in row for row in client.results(poisoned.id))
    assert client.retry(poisoned.id) == []


def test_cancel_holds_across_a_worker_restart(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    banking: LabelledTexts,
) -> None:
    texts = banking.texts[:1000]
    texts[250] = HANG  # the first worker is inside the chunk that holds it when the job is cancelled
    first = start_worker(extra=FAULTS)
    job = client.submit_bulk(texts, model="tiny", chunk_size=100)
    assert redis_client.blpop([HANGING_KEY], timeout=WAIT_S), first.log_tail()

    assert client.cancel(job.id).state == "cancelled"
    first.kill()
    start_worker()  # a fresh worker: nothing of the cancel lives in worker memory
    later = client.submit_bulk(banking.texts[:10], model="tiny")  # queued behind the cancelled chunks
    assert later.wait(WAIT_S).state == "succeeded"

    status = client.status(job.id)
    assert status.state == "cancelled"
    runs = client.jobs.chunk_runs(job.id)
    assert sum(runs.values()) == 1 + status.done_chunks  # the hanging chunk, and those done before it
    # the chunks of its window were skipped; those past the window were never sent
    assert status.cancelled_chunks > 0 and status.done_chunks + status.cancelled_chunks + 1 <= status.total_chunks == 10
    # its finished rows can be read: every input has a row, a label where its chunk ran, `cancelled` elsewhere
    rows = list(client.results(job.id))
    assert _ids(rows) == [str(i) for i in range(1000)]
    assert sum("label" in row for row in rows) == 100 * status.done_chunks
    assert {row["error"]["code"] for row in rows if "error" in row} == {"cancelled"}
    with pytest.raises(JobStateError):
        client.retry(job.id)


def test_an_idempotent_resubmission_returns_the_same_job_and_runs_it_once(
    start_worker: Callable[..., WorkerProcess], client: LeptonClient, banking: LabelledTexts
) -> None:
    first = client.submit_bulk(banking.texts[:500], model="tiny", chunk_size=100, idempotency_key="nightly-2026-11-22")
    again = client.submit_bulk(banking.texts[:500], model="tiny", chunk_size=100, idempotency_key="nightly-2026-11-22")
    other = client.submit_bulk(banking.texts[:500], model="tiny", chunk_size=100, idempotency_key="nightly-2026-11-23")
    assert again.id == first.id and not again.created
    assert other.id != first.id and other.created
    start_worker()
    status = first.wait(WAIT_S)
    assert status.state == "succeeded"
    assert status.chunk_runs == status.total_chunks == 5  # enqueued once


def test_a_chunk_over_its_time_limit_fails_the_job_with_time_limit(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    banking: LabelledTexts,
    queue_env: dict[str, str],
    tmp_path: Path,
) -> None:
    texts = banking.texts[:300]
    texts[5] = HANG  # runs past the soft time limit (5 s in these tests)
    worker = start_worker(extra=FAULTS)
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    # `lepton submit` as a user runs it: the failed chunk's line keeps its code and says what to change
    submitted = CliRunner().invoke(cli, ["submit", str(source), "--model", "tiny", "--chunk-size", "100"],
                                   env=queue_env)  # fmt: skip
    assert submitted.exit_code == 1, submitted.output
    assert "chunk 0: [time_limit] the task ran past its time limit (LEPTON_TASK_SOFT_TIME_LIMIT_S" in " ".join(
        submitted.output.split()
    )
    status = client.status(submitted.output.split()[0])
    assert status.state == "failed"
    assert (status.done_chunks, [f.code for f in status.failures]) == (2, ["time_limit"])
    shown = CliRunner().invoke(cli, ["jobs", "status", status.id], env=queue_env)
    assert "chunk 0: [time_limit] the task ran past its time limit" in shown.output
    (letter,) = DeadLetterStore(redis_client).list()
    assert letter.code == "time_limit" and letter.traceback and "SoftTimeLimitExceeded" in letter.traceback
    assert worker.process.poll() is None


def test_a_chunk_killed_at_its_hard_time_limit_still_fails_its_job(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    banking: LabelledTexts,
) -> None:
    texts = banking.texts[:300]
    texts[5] = STUCK  # ignores the soft limit: the pool process is killed at the hard one (6 s here)
    worker = start_worker(extra=FAULTS)
    status = client.submit_bulk(texts, model="tiny", chunk_size=100).wait(WAIT_S)
    assert status.state == "failed"  # the job does not wait forever for the killed chunk
    assert (status.done_chunks, [f.code for f in status.failures]) == (2, ["time_limit"])
    (letter,) = DeadLetterStore(redis_client).list()
    assert letter.code == "time_limit"
    assert worker.process.poll() is None


def test_a_soft_time_limit_passing_after_the_task_returned_changes_nothing(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    banking: LabelledTexts,
) -> None:
    # LATE returns at once, then Celery takes 3 s to store the result: the 2 s soft limit passes meanwhile
    limits = {"LEPTON_TASK_SOFT_TIME_LIMIT_S": "2", "LEPTON_TASK_TIME_LIMIT_S": "10", "LEPTON_TEST_LATE_S": "3"}
    worker = start_worker(extra=FAULTS, env=limits)
    texts = banking.texts[:300]
    texts[5] = LATE
    classified = client.classify(texts[:20], model="tiny", lane="bulk")
    assert len(classified.wait(WAIT_S)) == 20
    status = client.submit_bulk(texts, model="tiny", chunk_size=100).wait(WAIT_S)
    assert (status.state, status.done_chunks, status.failures, status.chunk_runs) == ("succeeded", 3, [], 3)
    assert AsyncResult(classified.id, app=client.celery).state == "SUCCESS"  # not overwritten by a late failure
    assert DeadLetterStore(redis_client).list() == []
    assert worker.process.poll() is None


def test_retry_sends_the_chunks_a_producer_died_before_sending(
    start_worker: Callable[..., WorkerProcess], client: LeptonClient, banking: LabelledTexts
) -> None:
    version = client.resolve("tiny")
    job_id = inline_job(  # recorded, then the producer died: no chunk was ever sent
        client.jobs, Path(client.data.root), banking.texts[:300], chunk_size=100, model_version=version.reference,
        model_sha256=version.manifest.content_sha256,
    )  # fmt: skip
    start_worker()
    assert client.retry(job_id) == [0, 1, 2]
    status = client.wait(job_id, WAIT_S)
    assert status.state == "succeeded" and status.chunk_runs == 3
    assert client.retry(job_id) == []  # sent now: nothing more to send
