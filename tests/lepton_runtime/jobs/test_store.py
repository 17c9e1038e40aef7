"""The job store on a real Redis: chunk states and counters stay exact under repeats, failures and cancels."""

from __future__ import annotations

import json

import pytest
import redis

from lepton_runtime.errors import InvalidInputError, JobNotFoundError, JobStateError, JobTimeoutError
from lepton_runtime.jobs import JobStore
from lepton_runtime.jobs.keys import JobKeys


def _create(store: JobStore, count: int = 10, chunk_size: int = 3, **options: str) -> str:
    items = ((str(i), f"text {i}") for i in range(count))
    job_id, created = store.create(
        items, model="m", model_version="m@1", model_sha256="abc", source="<list>", chunk_size=chunk_size, **options
    )
    assert created
    return job_id


def _rows(store: JobStore, job_id: str, chunk: int) -> list[str]:
    return [json.dumps({"id": item_id, "label": "x"}) for item_id, _ in store.chunk_inputs(job_id, chunk)]


def _complete(store: JobStore, job_id: str, chunk: int) -> bool:
    return store.complete_chunk(job_id, chunk, _rows(store, job_id, chunk), error_items=0)


def test_a_chunk_delivered_twice_is_counted_and_written_once(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_id = _create(store)
    assert store.status(job_id).total_chunks == 4
    for chunk in range(4):
        assert store.start_chunk(job_id, chunk) == "run"
        assert store.start_chunk(job_id, chunk) == "run"  # a redelivery while the first run is lost
        rows = _rows(store, job_id, chunk)
        assert store.complete_chunk(job_id, chunk, rows, error_items=0)
        assert not store.complete_chunk(job_id, chunk, rows, error_items=0)
        assert store.start_chunk(job_id, chunk) == "done"
    status = store.status(job_id)
    assert (status.state, status.done_texts, status.done_chunks, status.chunk_runs) == ("succeeded", 10, 4, 8)
    assert [json.loads(line)["id"] for line in store.results(job_id)] == [str(i) for i in range(10)]
    assert not redis_client.exists(JobKeys(job_id).inputs)  # freed once the job succeeded
    assert 0 < redis_client.ttl(JobKeys(job_id).results) <= store.ttl_s


def test_failed_chunks_fail_the_job_and_requeue_only_them(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_id = _create(store)
    for chunk in range(4):
        store.start_chunk(job_id, chunk)
        if chunk == 1:
            store.fail_chunk(job_id, chunk, "corrupt_model", "bad file")
        else:
            _complete(store, job_id, chunk)
    status = store.status(job_id)
    assert (status.state, status.failed_chunks, status.done_texts) == ("failed", 1, 7)
    assert [(f.chunk, f.code) for f in status.failures] == [(1, "corrupt_model")]
    rows = [json.loads(line) for line in store.results(job_id)]
    assert [row["id"] for row in rows] == [str(i) for i in range(10)]
    assert [row["error"]["code"] for row in rows[3:6]] == ["corrupt_model"] * 3

    assert store.requeue_failed(job_id) == [1]
    assert store.status(job_id).state == "queued"
    assert store.requeue_failed(job_id) == []  # nothing failed any more
    store.start_chunk(job_id, 1)
    _complete(store, job_id, 1)
    assert store.status(job_id).state == "succeeded"


def test_cancel_stops_chunks_not_started_and_refuses_retry(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_id = _create(store)
    store.start_chunk(job_id, 0)
    assert store.cancel(job_id).state == "cancelled"
    assert store.start_chunk(job_id, 1) == "cancelled"
    _complete(store, job_id, 0)  # a chunk already running may finish; the job stays cancelled
    status = store.status(job_id)
    assert (status.state, status.cancelled_chunks, status.done_chunks) == ("cancelled", 1, 1)
    assert store.wait(job_id, timeout_s=1).state == "cancelled"
    with pytest.raises(JobStateError, match="cancelled"):
        store.requeue_failed(job_id)


def test_an_idempotency_key_names_one_job(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_id = _create(store, idempotency_key_value="k")
    again, created = store.create(
        [("0", "other")], model="m", model_version="m@1", model_sha256="abc", source="<list>", chunk_size=3,
        idempotency_key_value="k",
    )  # fmt: skip
    assert (again, created) == (job_id, False)
    assert len(store.list_jobs()) == 1


def test_bad_input_part_way_leaves_nothing_behind(redis_client: redis.Redis) -> None:
    def items() -> object:
        yield from (("0", "a"), ("1", "b"))
        raise InvalidInputError("line 3 is not valid JSON")

    store = JobStore(redis_client)
    with pytest.raises(InvalidInputError):
        store.create(items(), model="m", model_version="m@1", model_sha256="abc", source="f", chunk_size=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no texts"):
        store.create(iter([]), model="m", model_version="m@1", model_sha256="abc", source="f", chunk_size=1)
    assert redis_client.keys("*") == []


def test_waiting_is_bounded_and_unknown_jobs_are_named(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_id = _create(store)
    with pytest.raises(JobTimeoutError, match="still queued"):
        store.wait(job_id, timeout_s=0.2)
    with pytest.raises(JobNotFoundError, match="nope"):
        store.status("nope")
    with pytest.raises(JobStateError, match="queued"):
        list(store.results(job_id))


def test_a_chunk_the_job_does_not_have_changes_nothing(redis_client: redis.Redis) -> None:
    """A forged message naming another job's chunk 10,000 (it has 4): not started, and its failure is not the job's."""
    store = JobStore(redis_client)
    job_id = _create(store)
    before = store.status(job_id)
    assert store.start_chunk(job_id, 10_000) == "missing"
    store.fail_chunk(job_id, 10_000, "internal_error", "forged")
    assert store.status(job_id) == before
    assert store.chunk_state(job_id, 10_000) is None
    assert store.chunk_runs(job_id) == {}
