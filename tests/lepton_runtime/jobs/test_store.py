"""The job store on a real Redis: chunk states and counters stay exact under repeats, failures and cancels; a job's
chunks go out a window at a time; Redis keeps bookkeeping only."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from lepton_runtime.errors import InvalidInputError, JobNotFoundError, JobStateError, JobTimeoutError
from lepton_runtime.jobs import JobStore
from lepton_runtime.jobs.data_store import DataStore
from lepton_runtime.jobs.keys import BULK_RUNNING_JOBS_KEY, FLEET_KEY, JobKeys
from lepton_runtime.jobs.store import JobInput, PartRecord
from tests.bulk_helpers import inline_job


def _create(store: JobStore, tmp_path: Path, count: int = 10, chunk_size: int = 3, **options: object) -> str:
    return inline_job(store, tmp_path, [f"text {i}" for i in range(count)], chunk_size=chunk_size, **options)


def _part(store: JobStore, job_id: str, chunk: int) -> PartRecord:
    """A part as a worker would record it for ``chunk`` (its rows: the chunk's share of the texts)."""
    status = store.status(job_id)
    rows = min(status.chunk_size, status.total_texts - chunk * status.chunk_size)
    return PartRecord(chunk, rows, 100 + store.split(job_id, chunk).start, "0" * 64)


def _complete(store: JobStore, job_id: str, chunk: int) -> bool:
    return store.complete_chunk(job_id, chunk, _part(store, job_id, chunk), error_items=0).recorded


def test_a_chunk_delivered_twice_is_counted_and_recorded_once(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = JobStore(redis_client)
    job_id = _create(store, tmp_path)
    assert store.status(job_id).total_chunks == 4
    for chunk in range(4):
        assert store.start_chunk(job_id, chunk) == "run"
        assert store.start_chunk(job_id, chunk) == "run"  # a redelivery while the first run is lost
        assert _complete(store, job_id, chunk)
        assert not _complete(store, job_id, chunk)
        assert store.start_chunk(job_id, chunk) == "done"
    status = store.status(job_id)
    assert (status.state, status.done_texts, status.done_chunks, status.chunk_runs) == ("succeeded", 10, 4, 8)
    assert sorted(store.parts(job_id)) == [0, 1, 2, 3]
    assert 0 < redis_client.ttl(JobKeys(job_id).parts) <= store.ttl_s


def test_the_window_sends_chunks_as_others_finish_and_grows_with_the_fleet(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    store = JobStore(redis_client)
    job_id = _create(store, tmp_path, count=30, chunk_size=3, window_chunks=2)  # 10 chunks
    assert store.dispatch(job_id) == [0, 1]
    assert store.dispatch(job_id) == []  # the window is full
    store.start_chunk(job_id, 0)
    outcome = store.complete_chunk(job_id, 0, PartRecord(0, 3, 1, "0" * 64), 0)
    assert (outcome.recorded, outcome.final_state, outcome.to_send) == (True, None, [2])
    assert store.fail_chunk(job_id, 1, "internal_error", "boom").to_send == [3]  # failed for good: its place frees
    redis_client.hset(FLEET_KEY, mapping={f"host:{pid}": "{}" for pid in range(3)})  # 3 processes: a window of 6
    assert store.dispatch(job_id) == [4, 5, 6, 7]
    assert store.requeue_failed(job_id) == [1]  # sent again by the caller: it takes a place
    assert store.dispatch(job_id) == []
    assert store.unsent_chunks(job_id) == [1, 2, 3, 4, 5, 6, 7]  # taken to send, and no producer said it sent them
    store.mark_enqueued(job_id)
    assert store.unsent_chunks(job_id) == []


def test_a_tenants_jobs_share_its_weight(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = JobStore(redis_client)
    light = _create(store, tmp_path, count=30, chunk_size=1, window_chunks=4, tenant="light")
    assert store.dispatch(light) == [0, 1, 2, 3]
    heavy = [_create(store, tmp_path, count=30, chunk_size=1, window_chunks=4, tenant="heavy", weight=2.0)]
    heavy.append(_create(store, tmp_path, count=30, chunk_size=1, window_chunks=4, tenant="heavy", weight=2.0))
    assert [len(store.dispatch(job)) for job in heavy] == [4, 4]  # 4 x 2 shared by 2 jobs
    assert redis_client.hget(BULK_RUNNING_JOBS_KEY, "heavy") == "2"
    store.cancel(heavy[1])
    assert redis_client.hget(BULK_RUNNING_JOBS_KEY, "heavy") == "1"
    store.start_chunk(heavy[0], 0)
    assert len(store.complete_chunk(heavy[0], 0, PartRecord(0, 1, 1, "0" * 64), 0).to_send) == 5  # now 8 alone


def test_failed_chunks_fail_the_job_and_requeue_only_them(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = JobStore(redis_client)
    job_id = _create(store, tmp_path)
    assert store.dispatch(job_id) == [0, 1, 2, 3]
    for chunk in range(4):
        store.start_chunk(job_id, chunk)
        if chunk == 1:
            assert store.fail_chunk(job_id, chunk, "corrupt_model", "bad file").final_state is None
        elif chunk < 3:
            _complete(store, job_id, chunk)
    assert store.complete_chunk(job_id, 3, _part(store, job_id, 3), 0).final_state == "failed"
    status = store.status(job_id)
    assert (status.state, status.failed_chunks, status.done_texts) == ("failed", 1, 7)
    assert [(f.chunk, f.code) for f in status.failures] == [(1, "corrupt_model")]
    assert redis_client.hget(BULK_RUNNING_JOBS_KEY, "default") is None  # finished: it shares nothing

    # an hour passes before the retry: the job's rate counts its running time, not the pause
    record = JobKeys(job_id).record
    started_at = float(redis_client.hget(record, "started_at") or 0)
    redis_client.hset(record, mapping={"started_at": started_at - 3600, "finished_at": started_at - 3590})
    assert store.requeue_failed(job_id) == [1]
    assert store.status(job_id).state == "queued"
    assert store.requeue_failed(job_id) == []  # nothing failed any more
    store.start_chunk(job_id, 1)
    assert store.complete_chunk(job_id, 1, _part(store, job_id, 1), 0).final_state == "succeeded"
    status = store.status(job_id)
    running_s = 10 + (status.finished_at or 0) - started_at  # 10 s before the pause, the rest after it
    assert status.progress.texts_per_s == pytest.approx(10 / running_s, rel=0.01)


def test_cancel_stops_chunks_not_started_and_refuses_retry(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = JobStore(redis_client)
    job_id = _create(store, tmp_path)
    store.start_chunk(job_id, 0)
    assert store.cancel(job_id).state == "cancelled"
    assert store.start_chunk(job_id, 1) == "cancelled"
    _complete(store, job_id, 0)  # a chunk already running may finish; the job stays cancelled
    status = store.status(job_id)
    assert (status.state, status.cancelled_chunks, status.done_chunks) == ("cancelled", 1, 1)
    assert store.wait(job_id, timeout_s=1).state == "cancelled"
    assert store.dispatch(job_id) == []
    with pytest.raises(JobStateError, match="cancelled"):
        store.requeue_failed(job_id)


def test_an_idempotency_key_names_one_job(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = JobStore(redis_client)
    job_id = _create(store, tmp_path, idempotency_key_value="k")
    assert store.job_for_key("k") == job_id
    again = inline_job(store, tmp_path, ["other"], chunk_size=3, idempotency_key_value="k2")
    assert again != job_id and len(store.list_jobs()) == 2


def test_a_job_without_texts_or_with_bad_splits_leaves_nothing_behind(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    store = JobStore(redis_client)
    data = DataStore(str(tmp_path))
    with pytest.raises(InvalidInputError, match="no texts"):
        data.write_items(str(tmp_path / "empty.jsonl"), iter([]), 3)
    assert not list(tmp_path.iterdir())  # no file, no scratch

    def splits() -> object:
        yield from data.write_items(str(tmp_path / "t.jsonl"), [("0", "a"), ("1", "b")], 1).splits
        raise InvalidInputError("the dataset changed while it was planned")

    job_input = JobInput(str(tmp_path / "t.jsonl"), [])
    with pytest.raises(InvalidInputError):
        store.create(job_input, splits(), model="m", model_version="m@1", model_sha256="abc", source="f",  # type: ignore[arg-type]
                     output=str(tmp_path / "out"), chunk_size=1)  # fmt: skip
    assert redis_client.keys("*") == []


def test_waiting_is_bounded_and_unknown_jobs_are_named(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = JobStore(redis_client)
    job_id = _create(store, tmp_path)
    with pytest.raises(JobTimeoutError, match="still queued"):
        store.wait(job_id, timeout_s=0.2)
    with pytest.raises(JobNotFoundError, match="nope"):
        store.status("nope")


def test_a_chunk_the_job_does_not_have_changes_nothing(redis_client: redis.Redis, tmp_path: Path) -> None:
    """A forged message naming another job's chunk 10,000 (it has 4): not started, and its failure is not the job's."""
    store = JobStore(redis_client)
    job_id = _create(store, tmp_path)
    before = store.status(job_id)
    assert store.start_chunk(job_id, 10_000) == "missing"
    store.fail_chunk(job_id, 10_000, "internal_error", "forged")
    assert store.status(job_id) == before
    assert store.chunk_state(job_id, 10_000) is None
    assert store.chunk_runs(job_id) == {}
