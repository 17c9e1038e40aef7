"""Bulk jobs in Redis, bookkeeping only: a job planned from its dataset's splits, its chunks moved through their states
and sent a window at a time, and where each chunk's output part lies (the rows themselves are in the data store)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import redis

from lepton_runtime.constants import DEFAULT_BULK_WINDOW_CHUNKS, DEFAULT_JOB_TTL_S, DEFAULT_TENANT, MAX_CHUNK_SIZE
from lepton_runtime.errors import InputIssue, InvalidInputError, JobNotFoundError, JobStateError, JobTimeoutError
from lepton_runtime.jobs import scripts
from lepton_runtime.jobs.connection import write_then_wait
from lepton_runtime.jobs.data_store import files_from_json, files_json
from lepton_runtime.jobs.datasets import DatasetFile, Split
from lepton_runtime.jobs.keys import (
    BULK_RUNNING_JOBS_KEY,
    BULK_TENANT_COUNTERS_KEY,
    FLEET_KEY,
    JOB_INDEX_KEY,
    JobKeys,
    idempotency_key,
    tenant_job_index_key,
)
from lepton_runtime.jobs.owners import OWNER_FIELD
from lepton_runtime.jobs.parts import PART_DIGITS
from lepton_runtime.jobs.schemas import ChunkFailure, JobStatus, Progress
from lepton_runtime.jobs.waiting import wait_until_finished

StartDecision = Literal["run", "done", "failed", "cancelled", "missing"]
# Splits written to Redis per round trip while a job is planned.
SPLITS_PER_WRITE = 2000
# Chunks of one job at most: its parts are named with six digits (jobs/parts.py), so they sort in chunk order.
MAX_CHUNKS = 10**PART_DIGITS - 1
# Failed chunks listed in a status (the counters hold the full number).
MAX_FAILURES_SHOWN = 20
_COUNTERS = ("done_texts", "done_chunks", "failed_chunks", "cancelled_chunks", "error_items", "chunk_runs")


@dataclass(frozen=True)
class JobInput:
    """Where a job's texts are: the dataset's location, its files as planned, and the fields of a row."""

    location: str
    files: list[DatasetFile]
    text_field: str = "text"
    id_field: str = "id"
    inline: bool = False  # texts the producer wrote to the store for this job: removed once it succeeds


@dataclass(frozen=True)
class ChunkWork:
    """What a worker needs to run one chunk: the exact model, the split of the input it reads, where it writes."""

    job_id: str
    chunk: int
    model_version: str
    model_sha256: str
    input: JobInput
    split: Split
    output: str
    task: str | None = None  # what the job asks of the model (None: its own task), with that task's parameters
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkOutcome:
    """What recording a chunk's end did: whether it counted (not a twin's), the job's final state if it just ended,
    and the chunks its window lets go now (the caller sends them)."""

    recorded: bool
    final_state: str | None
    to_send: list[int]


def split_field(split: Split) -> str:
    """A split as the job keeps it: ``file,start,stop,row_group,first_row`` (empty where unknown)."""
    values = (split.file, split.start, split.stop, split.row_group, split.first_row)
    return ",".join("" if value is None else str(value) for value in values)


def split_from_field(raw: str) -> Split:
    file, start, stop, row_group, first_row = raw.split(",")
    return Split(int(file), int(start), int(stop), int(row_group) if row_group else None,
                 int(first_row) if first_row else None)  # fmt: skip


@dataclass(frozen=True)
class PartRecord:
    """One chunk's output part as the job keeps it until the manifest is committed."""

    chunk: int
    rows: int
    size_bytes: int
    sha256: str

    def field(self) -> str:
        return f"{self.rows},{self.size_bytes},{self.sha256}"

    @classmethod
    def from_field(cls, chunk: int, raw: str) -> PartRecord:
        rows, size, sha256 = raw.split(",")
        return cls(chunk, int(rows), int(size), sha256)


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
        self._dispatch = client.register_script(scripts.DISPATCH)
        self._cancel = client.register_script(scripts.CANCEL_JOB)
        self._requeue = client.register_script(scripts.REQUEUE_FAILED)

    # -- producers -------------------------------------------------------------------------------
    def new_job_id(self) -> str:
        return uuid.uuid4().hex

    def create(
        self,
        job_input: JobInput,
        splits: Iterable[Split],
        *,
        model: str,
        model_version: str,
        model_sha256: str,
        source: str,
        output: str,
        chunk_size: int,
        tenant: str = DEFAULT_TENANT,
        weight: float = 1.0,
        window_chunks: int = DEFAULT_BULK_WINDOW_CHUNKS,
        total_texts: int | None = None,
        idempotency_key_value: str | None = None,
        job_id: str | None = None,
        task: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Record a job over ``job_input``'s ``splits`` (one chunk each, in input order), owned by ``tenant``; return
        (job id, whether it is new). Its chunks are sent with ``dispatch``, a window at a time.

        ``task``, ``params``: what every chunk asks of the model (None: the model's own task), checked by the caller.
        ``total_texts``: the rows when the splits do not say (a line file's ranges are counted as they are read:
        the total shown meanwhile is the splits' estimate). With an idempotency key already used, nothing is
        written and the first job's id comes back. The record is written after the splits and the key after the
        record, so a crash part-way leaves no job that points at missing splits.
        """
        if idempotency_key_value and (existing := self.job_for_key(idempotency_key_value)):
            return existing, False
        job_id = job_id or self.new_job_id()
        keys = JobKeys(job_id)
        try:
            total_chunks, counted = self._write_splits(keys, job_input, splits)
            if total_chunks == 0:
                raise InvalidInputError(f"{source}: no texts to classify; give at least one")
        except BaseException:
            self.redis.delete(*keys.all())  # bad input part-way: leave nothing behind
            raise
        now = time.time()
        exact = total_texts is not None or counted is not None
        record = {
            "id": job_id,
            OWNER_FIELD: tenant,
            "state": "queued",
            "model": model,
            "model_version": model_version,
            "model_sha256": model_sha256,
            "source": source,
            "input": job_input.location,
            "inline": "1" if job_input.inline else "0",
            "text_field": job_input.text_field,
            "id_field": job_input.id_field,
            "output": output,
            **({"task": task, "params": json.dumps(params or {})} if task else {}),
            "total_texts": total_texts if total_texts is not None else counted if counted is not None else 0,
            "total_exact": "1" if exact else "0",
            "total_chunks": total_chunks,
            "chunk_size": chunk_size,
            "window": window_chunks,
            "weight": weight,
            "dispatched": 0,
            "inflight": 0,
            "created_at": now,
            "cancelled": "0",
            **dict.fromkeys(_COUNTERS, 0),
        }
        if not exact:  # an estimate from the line files' sizes: replaced by the count when the job succeeds
            record["total_texts"] = total_chunks * chunk_size
        try:
            with self.redis.pipeline() as pipe:
                pipe.hset(keys.record, mapping=record)  # type: ignore[arg-type]
                for key in (keys.record, keys.chunk_states, keys.splits, keys.files):
                    pipe.expire(key, self.ttl_s)
                pipe.zadd(JOB_INDEX_KEY, {job_id: now})
                pipe.zadd(tenant_job_index_key(tenant), {job_id: now})
                pipe.expire(tenant_job_index_key(tenant), self.ttl_s)
                pipe.hincrby(BULK_RUNNING_JOBS_KEY, tenant, 1)
                pipe.execute()
        except redis.ResponseError:  # refused (Redis full): the splits go too
            self.discard(job_id)
            raise
        if idempotency_key_value and (winner := self.claim_key(idempotency_key_value, job_id)) != job_id:
            self.discard(job_id)  # another submission with this key won the race
            return winner, False
        self.redis.hincrby(BULK_TENANT_COUNTERS_KEY, f"{tenant}|jobs_submitted", 1)  # once it is the key's job
        return job_id, True

    def dispatch(self, job_id: str) -> list[int]:
        """Take the chunks the job's window lets go now (marked sent); the caller sends them."""
        return [int(index) for index in self._call(self._dispatch, job_id)]

    def discard(self, job_id: str) -> None:
        """Delete every key of a job that was never handed out (its submission failed part-way)."""
        keys = JobKeys(job_id)
        tenant, state = self.redis.hmget(keys.record, [OWNER_FIELD, "state"])
        self.redis.delete(*keys.all())
        self.redis.zrem(JOB_INDEX_KEY, job_id)
        if tenant is not None and state in ("queued", "running"):
            self.redis.hincrby(BULK_RUNNING_JOBS_KEY, cast(str, tenant), -1)

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
        """Chunks taken to send and still queued in a job whose producer never finished sending them (else none)."""
        keys = JobKeys(job_id)
        if self.redis.hexists(keys.record, "enqueued_at") or self.redis.hget(keys.record, "cancelled") == "1":
            return []
        dispatched = int(cast(str, self.redis.hget(keys.record, "dispatched") or 0))
        states = self.redis.hgetall(keys.chunk_states)
        return sorted(int(i) for i, state in states.items() if state == "queued" and int(i) < dispatched)

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

    def chunk_work(self, job_id: str, chunk: int) -> ChunkWork:
        """The model, input split and output of one chunk (one round trip)."""
        keys = JobKeys(job_id)
        fields = ["model_version", "model_sha256", "input", "text_field", "id_field", "inline", "output"]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.record, [*fields, "task", "params"])
            pipe.hget(keys.splits, str(chunk))
            pipe.get(keys.files)
            (version, sha256, location, text_field, id_field, inline, output, task, params), split, files = (
                pipe.execute()
            )
        if version is None or split is None or files is None:
            raise JobNotFoundError(f"job {job_id} has no chunk {chunk} (expired, or not a chunk of it)")
        job_input = JobInput(location, files_from_json(files), text_field, id_field, inline == "1")
        split_of_chunk = split_from_field(split)
        asked = json.loads(params) if params else {}
        return ChunkWork(job_id, chunk, version, sha256, job_input, split_of_chunk, output, task or None, asked)

    def job_input(self, job_id: str) -> tuple[JobInput, str]:
        """A job's input and its output location."""
        keys = JobKeys(job_id)
        fields = ["input", "text_field", "id_field", "inline", "output"]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.record, fields)
            pipe.get(keys.files)
            (location, text_field, id_field, inline, output), files = pipe.execute()
        if location is None or files is None:
            raise self._not_found(job_id)
        return JobInput(location, files_from_json(files), text_field, id_field, inline == "1"), output

    def split(self, job_id: str, chunk: int) -> Split:
        raw = self.redis.hget(JobKeys(job_id).splits, str(chunk))
        if raw is None:
            raise JobNotFoundError(f"job {job_id} has no chunk {chunk} (expired, or not a chunk of it)")
        return split_from_field(cast(str, raw))

    def parts(self, job_id: str) -> dict[int, PartRecord]:
        """The output parts the job's chunks recorded, by chunk."""
        found = cast(dict[str, str], self.redis.hgetall(JobKeys(job_id).parts))
        return {int(i): PartRecord.from_field(int(i), raw) for i, raw in found.items()}

    def complete_chunk(self, job_id: str, chunk: int, part: PartRecord, error_items: int) -> ChunkOutcome:
        """Record a chunk's output part once (a redelivery's is not recorded again)."""
        reply = self._call(self._complete, job_id, chunk, part.field(), part.rows, error_items)
        return _outcome(reply)

    def fail_chunk(self, job_id: str, chunk: int, code: str, message: str) -> ChunkOutcome:
        reply = self._call(self._fail, job_id, chunk, json.dumps({"code": code, "message": message}))
        return _outcome(reply)

    def chunk_error(self, job_id: str, chunk: int) -> dict[str, str] | None:
        raw = self.redis.hget(JobKeys(job_id).chunk_errors, str(chunk))
        return json.loads(cast(str, raw)) if raw else None

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
    def _write_splits(self, keys: JobKeys, job_input: JobInput, splits: Iterable[Split]) -> tuple[int, int | None]:
        """Save the files and the splits (each chunk queued), a page per round trip; return (chunks, rows when every
        split knows its rows, else None)."""
        chunks, rows = 0, 0
        known = True
        page: dict[str, str] = {}

        def flush() -> None:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(keys.splits, mapping=page)  # type: ignore[arg-type]
                pipe.hset(keys.chunk_states, mapping=dict.fromkeys(page, "queued"))
                for key in (keys.splits, keys.chunk_states):
                    pipe.expire(key, self.ttl_s)  # a producer killed part-way leaves nothing forever
                pipe.execute()
            page.clear()

        self.redis.set(keys.files, files_json(job_input.files), ex=self.ttl_s)
        for split in splits:
            if chunks >= MAX_CHUNKS:
                raise InvalidInputError(
                    f"the dataset makes more than {MAX_CHUNKS:,} chunks; give a larger chunk size (up to "
                    f"{MAX_CHUNK_SIZE:,} rows), or split it into several jobs",
                    issues=[InputIssue("chunk_size", "too small for the dataset")],
                )
            page[str(chunks)] = split_field(split)
            chunks += 1
            if split.row_group is not None:
                rows += split.stop - split.start
            else:
                known = False
            if len(page) >= SPLITS_PER_WRITE:
                flush()
        if page:
            flush()
        return chunks, rows if known else None

    def job_for_key(self, key: str) -> str | None:
        """The live job an idempotency key (``tenant_scoped``) names, if any."""
        job_id = self.redis.get(idempotency_key(key))
        return cast(str, job_id) if job_id and self.redis.exists(JobKeys(cast(str, job_id)).record) else None

    def _call(self, script: Any, job_id: str, chunk: int | str = -1, *extra: Any) -> Any:
        keys = JobKeys(job_id)
        args = [keys.finished_channel, self.ttl_s, time.time(), chunk, *extra]
        return script(keys=[*keys.all(), BULK_TENANT_COUNTERS_KEY, BULK_RUNNING_JOBS_KEY, FLEET_KEY], args=args)

    @staticmethod
    def _not_found(job_id: str) -> JobNotFoundError:
        return JobNotFoundError(
            f"no job {job_id!r}: never submitted, expired, lost by a Redis that restarted without its append-only"
            " file, or lost in a failover before a replica held it (LEPTON_REDIS_WAIT_REPLICAS=1 makes a submission"
            " wait for one); list jobs with `lepton jobs list`, or submit it again"
        )


def _outcome(reply: list[Any]) -> ChunkOutcome:
    recorded, final, *to_send = reply
    return ChunkOutcome(bool(int(recorded)), final or None, [int(index) for index in to_send])


def _status_from_record(record: dict[str, str], failures: list[ChunkFailure]) -> JobStatus:
    counters = {name: int(record.get(name, 0)) for name in _COUNTERS}
    started_at = float(record["started_at"]) if "started_at" in record else None
    finished_at = float(record["finished_at"]) if "finished_at" in record else None
    total = int(record["total_texts"])
    rate = eta = None
    if started_at is not None and counters["done_texts"]:
        # running time: the pauses between a failed end and a retry (`lepton jobs retry`) left out
        elapsed_s = (finished_at or time.time()) - started_at - float(record.get("paused_s", 0))
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
        input=record.get("input"),
        output=record.get("output"),
        task=record.get("task"),
        params=json.loads(record["params"]) if record.get("params") else {},
        total_texts=total,
        total_exact=record.get("total_exact", "1") == "1",
        total_chunks=int(record["total_chunks"]),
        chunk_size=int(record["chunk_size"]),
        created_at=float(record["created_at"]),
        started_at=started_at,
        finished_at=finished_at,
        progress=Progress(done=counters["done_texts"], total=total, texts_per_s=rate, eta_s=eta),
        failures=failures,
        **counters,
    )
