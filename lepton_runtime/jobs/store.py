"""Bulk jobs in Redis: create a job from texts, move its chunks through their states, stream its results."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, cast

import redis

from lepton_runtime import unicode_text
from lepton_runtime.constants import DEFAULT_JOB_TTL_S, DEFAULT_TENANT
from lepton_runtime.errors import ChunkNotRunError, InvalidInputError, JobNotFoundError, JobStateError, JobTimeoutError
from lepton_runtime.jobs import scripts
from lepton_runtime.jobs.chunking import SORT_WINDOW_CHUNKS, in_input_order, plan_chunks
from lepton_runtime.jobs.connection import write_then_wait
from lepton_runtime.jobs.keys import (
    BULK_TENANT_COUNTERS_KEY,
    JOB_INDEX_KEY,
    JobKeys,
    idempotency_key,
    tenant_job_index_key,
)
from lepton_runtime.jobs.owners import OWNER_FIELD
from lepton_runtime.jobs.schemas import RESULT_STATES, ChunkFailure, JobStatus, Progress
from lepton_runtime.jobs.waiting import wait_until_finished

StartDecision = Literal["run", "done", "failed", "cancelled", "missing"]
# Failed chunks listed in a status (the counters hold the full number).
MAX_FAILURES_SHOWN = 20
_COUNTERS = ("done_texts", "done_chunks", "failed_chunks", "cancelled_chunks", "error_items", "chunk_runs")


class JobStore:
    """The one place that knows how a bulk job is kept in Redis (keys in ``lepton_runtime.jobs.keys``).

    Producers create jobs and read status and results; workers start, complete and fail chunks.
    Every change of a chunk's state is one Lua script, so a chunk delivered twice is counted once.
    """

    def __init__(self, client: redis.Redis, *, ttl_s: int = DEFAULT_JOB_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self._start = client.register_script(scripts.START_CHUNK)
        self._complete = client.register_script(scripts.COMPLETE_CHUNK)
        self._fail = client.register_script(scripts.FAIL_CHUNK)
        self._cancel = client.register_script(scripts.CANCEL_JOB)
        self._requeue = client.register_script(scripts.REQUEUE_FAILED)

    # -- producers -------------------------------------------------------------------------------
    def create(
        self,
        items: Iterable[tuple[str, str]],
        *,
        model: str,
        model_version: str,
        model_sha256: str,
        source: str,
        chunk_size: int,
        tenant: str = DEFAULT_TENANT,
        idempotency_key_value: str | None = None,
    ) -> tuple[str, bool]:
        """Record a job of ``(id, text)`` items split into chunks, owned by ``tenant``; return (job id, whether it
        is new).

        With an idempotency key already used, nothing is written and the first job's id comes back.
        The record is written after the inputs and the key after the record, so a crash part-way
        leaves no job that points at missing inputs.
        """
        if idempotency_key_value and (existing := self._job_for_key(idempotency_key_value)):
            return existing, False
        job_id = uuid.uuid4().hex
        keys = JobKeys(job_id)
        try:
            total_texts, total_chunks = self._write_inputs(keys, items, chunk_size)
            if total_texts == 0:
                raise InvalidInputError(f"{source}: no texts to classify; give at least one")
        except BaseException:
            self.redis.delete(*keys.all())  # bad input part-way: leave nothing behind
            raise
        now = time.time()
        record = {
            "id": job_id,
            OWNER_FIELD: tenant,
            "state": "queued",
            "model": model,
            "model_version": model_version,
            "model_sha256": model_sha256,
            "source": source,
            "total_texts": total_texts,
            "total_chunks": total_chunks,
            "chunk_size": chunk_size,
            "sort_window_chunks": SORT_WINDOW_CHUNKS,
            "created_at": now,
            "cancelled": "0",
            **dict.fromkeys(_COUNTERS, 0),
        }
        try:
            with self.redis.pipeline() as pipe:
                pipe.hset(keys.record, mapping=record)  # type: ignore[arg-type]
                for key in (keys.record, keys.inputs, keys.chunk_states, keys.chunk_positions):
                    pipe.expire(key, self.ttl_s)
                pipe.zadd(JOB_INDEX_KEY, {job_id: now})
                pipe.zadd(tenant_job_index_key(tenant), {job_id: now})
                pipe.expire(tenant_job_index_key(tenant), self.ttl_s)
                pipe.execute()
        except redis.ResponseError:  # refused (Redis full): the inputs go too
            self.discard(job_id)
            raise
        if idempotency_key_value and (winner := self.claim_key(idempotency_key_value, job_id)) != job_id:
            self.discard(job_id)  # another submission with this key won the race
            return winner, False
        self.redis.hincrby(BULK_TENANT_COUNTERS_KEY, f"{tenant}|jobs_submitted", 1)  # once it is the key's job
        return job_id, True

    def discard(self, job_id: str) -> None:
        """Delete every key of a job that was never handed out (its submission failed part-way)."""
        self.redis.delete(*JobKeys(job_id).all())
        self.redis.zrem(JOB_INDEX_KEY, job_id)

    def claim_key(self, key: str, job_id: str) -> str:
        """Bind an idempotency key to ``job_id`` unless it is bound already; return the job it names."""
        if self.redis.set(idempotency_key(key), job_id, nx=True, ex=self.ttl_s):
            return job_id
        return cast(str, self.redis.get(idempotency_key(key)))

    def release_key(self, key: str, job_id: str) -> None:
        """Unbind an idempotency key from ``job_id`` (its submission was refused), so that a retry can use it."""
        with self.redis.pipeline() as pipe:
            pipe.watch(idempotency_key(key))  # type: ignore[no-untyped-call]
            if pipe.get(idempotency_key(key)) == job_id:
                pipe.multi()
                pipe.delete(idempotency_key(key))
                pipe.execute()

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a job persistently: chunks not yet started are skipped by every worker, now or later."""
        if self._call(self._cancel, job_id) == "missing":
            raise self._not_found(job_id)
        return self.status(job_id)

    def requeue_failed(self, job_id: str, chunks: list[int] | None = None) -> list[int]:
        """Mark the failed chunks (all, or those listed) queued again; return their indices to enqueue."""
        requeued = [int(index) for index in self._call(self._requeue, job_id, *(chunks or []))]
        if requeued == [-1]:
            raise self._not_found(job_id)
        if requeued == [-2]:
            raise JobStateError(f"job {job_id} was cancelled, so it cannot be retried; submit its texts again")
        return requeued

    def mark_enqueued(self, job_id: str, *, wait_replicas: int = 0, wait_timeout_ms: int = 1000) -> int | None:
        """Record that every chunk of the job was sent (a producer may die before it gets here). With
        ``wait_replicas``, then WAIT for that many replicas to hold it and all before it: returns how many do."""
        record, now = JobKeys(job_id).record, time.time()

        def write(pipe: Any) -> None:
            pipe.hset(record, "sent_at", now)
            pipe.hsetnx(record, "enqueued_at", now)

        return write_then_wait(self.redis, write, wait_replicas=wait_replicas, wait_timeout_ms=wait_timeout_ms)

    def unsent_chunks(self, job_id: str) -> list[int]:
        """Chunks still queued in a job whose producer never finished sending them (else none)."""
        keys = JobKeys(job_id)
        if self.redis.hexists(keys.record, "enqueued_at") or self.redis.hget(keys.record, "cancelled") == "1":
            return []
        states = self.redis.hgetall(keys.chunk_states)
        return sorted(int(index) for index, state in states.items() if state == "queued")

    # -- workers ---------------------------------------------------------------------------------
    def start_chunk(self, job_id: str, chunk: int) -> StartDecision:
        """Claim a chunk for processing; anything but 'run' means skip it (and say why)."""
        return cast(StartDecision, self._call(self._start, job_id, chunk))

    def chunk_state(self, job_id: str, chunk: int) -> str | None:
        """queued | running | done | failed | cancelled, or None for no such chunk."""
        return cast(str | None, self.redis.hget(JobKeys(job_id).chunk_states, str(chunk)))

    def chunk_count(self, job_id: str) -> int:
        count = self.redis.hget(JobKeys(job_id).record, "total_chunks")
        if count is None:
            raise self._not_found(job_id)
        return int(cast(str, count))

    def model_of(self, job_id: str) -> tuple[str, str]:
        """The exact model version of a job and its content sha256, as resolved at submit."""
        version, sha256 = self.redis.hmget(JobKeys(job_id).record, ["model_version", "model_sha256"])
        if version is None:
            raise self._not_found(job_id)
        return cast(str, version), cast(str, sha256)

    def chunk_inputs(self, job_id: str, chunk: int) -> list[tuple[str, str]]:
        raw = self.redis.hget(JobKeys(job_id).inputs, str(chunk))
        if raw is None:
            raise JobNotFoundError(f"job {job_id} has no inputs for chunk {chunk} (expired or already succeeded)")
        return [(str(item_id), text) for item_id, text in json.loads(cast(str, raw))]

    def complete_chunk(self, job_id: str, chunk: int, rows: list[str], error_items: int) -> bool:
        """Store a chunk's output rows once; False if they were already stored (a redelivery)."""
        return bool(self._call(self._complete, job_id, chunk, "\n".join(rows), len(rows), error_items))

    def fail_chunk(self, job_id: str, chunk: int, code: str, message: str) -> None:
        self._call(self._fail, job_id, chunk, json.dumps({"code": code, "message": message}))

    # -- everyone --------------------------------------------------------------------------------
    def status(self, job_id: str) -> JobStatus:
        keys = JobKeys(job_id)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.record)
            pipe.hscan(keys.chunk_errors, count=MAX_FAILURES_SHOWN)
            record, (_, errors) = pipe.execute()
        if not record:
            raise self._not_found(job_id)
        failures = [
            ChunkFailure(chunk=int(index), **json.loads(error))
            for index, error in sorted(errors.items(), key=lambda item: int(item[0]))[:MAX_FAILURES_SHOWN]
        ]
        return _status_from_record(record, failures)

    def wait(
        self,
        job_id: str,
        timeout_s: float | None,
        *,
        on_progress: Callable[[JobStatus], None] | None = None,
        progress_interval_s: float = 0.5,
    ) -> JobStatus:
        """Block until the job reaches a final state (woken by its finished channel, not by polling)."""
        return wait_until_finished(
            self.redis,
            JobKeys(job_id).finished_channel,
            lambda: self.status(job_id),
            timeout_s,
            timed_out=lambda status: JobTimeoutError(
                f"job {job_id} is still {status.state} after {timeout_s} s "
                f"({status.done_texts}/{status.total_texts} texts); wait longer or check "
                f"`lepton jobs status {job_id}`"
            ),
            on_progress=on_progress,
            progress_interval_s=progress_interval_s,
        )

    def results(self, job_id: str) -> Iterator[str]:
        """The job's output rows (JSON lines) in input order, once it has finished.

        Failed chunks yield one error row per text (``{"id", "error": {"code", "message"}}``), so
        the output always holds every input exactly once.
        """
        status = self.status(job_id)
        if status.state not in RESULT_STATES:
            raise JobStateError(
                f"job {job_id} is {status.state}; results stream once it has succeeded or failed "
                f"(`lepton jobs status {job_id}`)"
            )
        keys = JobKeys(job_id)
        window = int(cast(str, self.redis.hget(keys.record, "sort_window_chunks") or 1))
        for first in range(0, status.total_chunks, window):
            batch = [str(index) for index in range(first, min(first + window, status.total_chunks))]
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hmget(keys.results, batch)
                pipe.hmget(keys.chunk_positions, batch)
                blobs, positions = pipe.execute()
            yield from in_input_order(
                (json.loads(where), blob.split("\n") if blob is not None else list(self._error_rows(job_id, int(i))))
                for i, blob, where in zip(batch, blobs, positions, strict=True)
            )

    def list_jobs(self, limit: int = 20, *, tenant: str | None = None) -> list[JobStatus]:
        """The most recent jobs (of ``tenant``, or of every tenant), newest first (expired ones are dropped from the
        index)."""
        index = JOB_INDEX_KEY if tenant is None else tenant_job_index_key(tenant)
        statuses = []
        for job_id in self.redis.zrevrange(index, 0, limit - 1):
            try:
                statuses.append(self.status(cast(str, job_id)))
            except JobNotFoundError:
                self.redis.zrem(index, cast(str, job_id))
        return statuses

    def chunk_runs(self, job_id: str) -> dict[int, int]:
        """How many times each chunk was started (redeliveries and retries included)."""
        runs = self.redis.hgetall(JobKeys(job_id).chunk_runs)
        return {int(index): int(count) for index, count in runs.items()}

    # -- internals -------------------------------------------------------------------------------
    def _write_inputs(self, keys: JobKeys, items: Iterable[tuple[str, str]], chunk_size: int) -> tuple[int, int]:
        """Save the planned chunks window by window (``jobs.chunking``); return (texts, chunks)."""
        total_texts = total_chunks = 0
        for window in plan_chunks(items, chunk_size, SORT_WINDOW_CHUNKS):
            inputs = {str(c.index): unicode_text.dumps(c.items) for c in window}
            positions = {str(c.index): json.dumps(c.positions) for c in window}
            total_chunks += len(window)
            total_texts += sum(len(c.items) for c in window)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(keys.inputs, mapping=inputs)  # type: ignore[arg-type]
                pipe.hset(keys.chunk_positions, mapping=positions)  # type: ignore[arg-type]
                pipe.hset(keys.chunk_states, mapping=dict.fromkeys(inputs, "queued"))
                for key in (keys.inputs, keys.chunk_positions, keys.chunk_states):
                    pipe.expire(key, self.ttl_s)  # a producer killed part-way leaves nothing forever
                pipe.execute()
        return total_texts, total_chunks

    def _error_rows(self, job_id: str, chunk: int) -> Iterator[str]:
        keys = JobKeys(job_id)
        error = self.redis.hget(keys.chunk_errors, str(chunk))
        detail = (
            json.loads(cast(str, error)) if error else {"code": ChunkNotRunError.code, "message": "the chunk never ran"}
        )
        for item_id, _ in self.chunk_inputs(job_id, chunk):
            yield json.dumps({"id": item_id, "error": detail}, ensure_ascii=False)

    def _job_for_key(self, key: str) -> str | None:
        job_id = self.redis.get(idempotency_key(key))
        return cast(str, job_id) if job_id and self.redis.exists(JobKeys(cast(str, job_id)).record) else None

    def _call(self, script: Any, job_id: str, chunk: int | str = -1, *extra: Any) -> Any:
        keys = JobKeys(job_id)
        args = [keys.finished_channel, self.ttl_s, time.time(), chunk, *extra]
        return script(keys=[*keys.all(), BULK_TENANT_COUNTERS_KEY], args=args)

    @staticmethod
    def _not_found(job_id: str) -> JobNotFoundError:
        return JobNotFoundError(
            f"no job {job_id!r}: never submitted, expired, lost by a Redis that restarted without its append-only"
            " file, or lost in a failover before a replica held it (LEPTON_REDIS_WAIT_REPLICAS=1 makes a submission"
            " wait for one); list jobs with `lepton jobs list`, or submit it again"
        )


def _status_from_record(record: dict[str, str], failures: list[ChunkFailure]) -> JobStatus:
    counters = {name: int(record.get(name, 0)) for name in _COUNTERS}
    started_at = float(record["started_at"]) if "started_at" in record else None
    finished_at = float(record["finished_at"]) if "finished_at" in record else None
    total = int(record["total_texts"])
    rate = eta = None
    if started_at is not None and counters["done_texts"]:
        elapsed_s = (finished_at or time.time()) - started_at
        rate = counters["done_texts"] / elapsed_s if elapsed_s > 0 else None
        eta = (total - counters["done_texts"]) / rate if rate else None
    return JobStatus(
        id=record["id"],
        tenant=record.get(OWNER_FIELD, DEFAULT_TENANT),
        state=record["state"],  # type: ignore[arg-type]
        model=record["model"],
        model_version=record["model_version"],
        model_sha256=record["model_sha256"],
        source=record["source"],
        total_texts=total,
        total_chunks=int(record["total_chunks"]),
        chunk_size=int(record["chunk_size"]),
        created_at=float(record["created_at"]),
        started_at=started_at,
        finished_at=finished_at,
        progress=Progress(done=counters["done_texts"], total=total, texts_per_s=rate, eta_s=eta),
        failures=failures,
        **counters,
    )
