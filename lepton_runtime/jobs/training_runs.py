"""Training runs in Redis: the request and its rows, state, progress, the persistent cancel flag, the outcome.

A run's id is its Celery task id. Producers create runs and read or cancel them; the worker that
runs ``lepton.train`` starts, reports and finishes them. Starting is one Lua script, so a run that
was cancelled while queued is never started, whatever the worker and however often delivered.

A started run has one holder (the delivery that started it), kept by a heartbeat. A second delivery
while the holder beats is told 'held' and runs nothing; once the holder has been silent for the
heartbeat timeout (dead, paused, cut off) a delivery takes the run over, and the old holder, should it
come back, finds it no longer holds the run: it stops, and neither publishes nor finishes it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast

import redis

from lepton_runtime import unicode_text
from lepton_runtime.constants import DEFAULT_JOB_TTL_S, DEFAULT_TENANT
from lepton_runtime.errors import JobCancelledError, JobNotFoundError, JobTimeoutError
from lepton_runtime.jobs.connection import write_then_wait
from lepton_runtime.jobs.keys import TRAINING_INDEX_KEY, TrainingKeys, idempotency_key, tenant_training_index_key
from lepton_runtime.jobs.owners import OWNER_FIELD
from lepton_runtime.jobs.schemas import (
    JobError,
    TrainingOutcome,
    TrainingProgress,
    TrainingStatus,
    TrainRequest,
)
from lepton_runtime.jobs.waiting import wait_until_finished

logger = logging.getLogger(__name__)

RunStart = Literal["run", "held", "succeeded", "failed", "cancelled", "missing"]
StopReason = Literal["cancelled", "superseded"]

# KEYS: record, finished channel; ARGV: now, holder, heartbeat timeout (s). -> 'run' or why not.
_START = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return state end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
  redis.call('PUBLISH', KEYS[2], 'cancelled')
  return 'cancelled'
end
if state == 'running' then
  local beat = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0')
  if tonumber(ARGV[1]) - beat < tonumber(ARGV[3]) then return 'held' end
end
redis.call('HSET', KEYS[1], 'state', 'running', 'holder', ARGV[2], 'heartbeat_at', ARGV[1])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 'run'
"""

# KEYS: record; ARGV: now, holder. -> 1 when the caller still holds the running run (the beat is recorded), else 0.
_HEARTBEAT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'holder') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'heartbeat_at', ARGV[1])
return 1
"""

# KEYS: record, finished channel, data, validation data; ARGV: now, state, field, JSON, ttl, holder ('' for
# anyone). -> 1 when this call finished the run, 0 when it had finished already or another delivery holds it.
_FINISH = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
if ARGV[6] ~= '' and state == 'running' and redis.call('HGET', KEYS[1], 'holder') ~= ARGV[6] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[1], ARGV[3], ARGV[4])
if ARGV[2] == 'succeeded' then redis.call('DEL', KEYS[3], KEYS[4]) end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
"""

# KEYS: record, finished channel; ARGV: now. -> the state after the call, or 'missing'.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return state end
redis.call('HSET', KEYS[1], 'cancel', '1')
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
  redis.call('PUBLISH', KEYS[2], 'cancelled')
  return 'cancelled'
end
return state
"""


class TrainingRuns:
    """The one place that knows how a training run is kept in Redis."""

    def __init__(self, client: redis.Redis, *, ttl_s: int = DEFAULT_JOB_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._cancel = client.register_script(_CANCEL)

    # -- producers -------------------------------------------------------------------------------
    def create(
        self,
        request: TrainRequest,
        rows: Iterable[dict[str, Any]],
        validation_rows: Iterable[dict[str, Any]] = (),
        *,
        tenant: str = DEFAULT_TENANT,
        idempotency_key_value: str | None = None,
    ) -> tuple[str, bool]:
        """Record a run and its rows, owned by ``tenant``; return (run id, whether it is new). The id is the task id
        to send."""
        run_id = uuid.uuid4().hex
        if idempotency_key_value:
            key = idempotency_key(idempotency_key_value)
            if not self.redis.set(key, run_id, nx=True, ex=self.ttl_s):
                return cast(str, self.redis.get(key)), False
        train_blob, train_count = _jsonl(rows)
        validation_blob, validation_count = _jsonl(validation_rows)
        now = time.time()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(TrainingKeys(run_id).data, train_blob, ex=self.ttl_s)
            if validation_count:
                pipe.set(TrainingKeys(run_id).validation, validation_blob, ex=self.ttl_s)
            pipe.hset(
                TrainingKeys(run_id).record,
                mapping={
                    "id": run_id,
                    OWNER_FIELD: tenant,
                    "state": "queued",
                    "request": request.model_dump_json(),
                    "train_rows": train_count,
                    "validation_rows": validation_count,
                    "created_at": now,
                    "progress": TrainingProgress(epochs=request.epochs).model_dump_json(),
                },
            )
            pipe.expire(TrainingKeys(run_id).record, self.ttl_s)
            pipe.zadd(TRAINING_INDEX_KEY, {run_id: now})
            pipe.zadd(tenant_training_index_key(tenant), {run_id: now})
            pipe.expire(tenant_training_index_key(tenant), self.ttl_s)
            pipe.execute()
        return run_id, True

    def mark_sent(self, run_id: str, *, wait_replicas: int = 0, wait_timeout_ms: int = 1000) -> int | None:
        """Record that the run's message was sent. With ``wait_replicas``, then WAIT for that many replicas to
        hold it and all before it: returns how many do."""
        return write_then_wait(
            self.redis,
            lambda pipe: pipe.hset(TrainingKeys(run_id).record, "sent_at", time.time()),
            wait_replicas=wait_replicas,
            wait_timeout_ms=wait_timeout_ms,
        )

    def cancel(self, run_id: str) -> TrainingStatus:
        """Cancel persistently: a queued run never starts; a running one stops at its next step, unpublished."""
        outcome = self._cancel(keys=self._keys(run_id), args=[time.time()])
        if outcome == "missing":
            raise self._not_found(run_id)
        return self.status(run_id)

    def status(self, run_id: str) -> TrainingStatus:
        record = cast(dict[str, Any], self.redis.hgetall(TrainingKeys(run_id).record))
        if not record:
            raise self._not_found(run_id)
        return _status_from_record(record)

    def tenant(self, run_id: str) -> str:
        """The tenant that submitted the run (and owns what it publishes)."""
        return cast(str, self.redis.hget(TrainingKeys(run_id).record, OWNER_FIELD) or DEFAULT_TENANT)

    def exists(self, run_id: str) -> bool:
        return bool(self.redis.exists(TrainingKeys(run_id).record))

    def wait(
        self,
        run_id: str,
        timeout_s: float | None,
        *,
        on_progress: Callable[[TrainingStatus], None] | None = None,
        progress_interval_s: float = 0.5,
    ) -> TrainingStatus:
        """Block until the run reaches a final state (woken by its finished channel, not by polling)."""
        return wait_until_finished(
            self.redis,
            TrainingKeys(run_id).finished_channel,
            lambda: self.status(run_id),
            timeout_s,
            timed_out=lambda status: JobTimeoutError(
                f"training run {run_id} is still {status.state} ({status.progress.phase}, epoch "
                f"{status.progress.epoch}/{status.progress.epochs}) after {timeout_s} s; wait longer or "
                f"check `lepton jobs status {run_id}`"
            ),
            on_progress=on_progress,
            progress_interval_s=progress_interval_s,
        )

    def list_runs(self, limit: int = 20, *, tenant: str | None = None) -> list[TrainingStatus]:
        """The most recent runs (of ``tenant``, or of every tenant), newest first (expired ones are dropped from the
        index)."""
        index = TRAINING_INDEX_KEY if tenant is None else tenant_training_index_key(tenant)
        statuses = []
        for run_id in self.redis.zrevrange(index, 0, limit - 1):
            try:
                statuses.append(self.status(cast(str, run_id)))
            except JobNotFoundError:
                self.redis.zrem(index, cast(str, run_id))
        return statuses

    # -- workers ---------------------------------------------------------------------------------
    def start(self, run_id: str, holder: str, heartbeat_timeout_s: float) -> RunStart:
        """'run' when the caller (``holder``, one delivery) should train, else why not: 'held' while another
        holder's last heartbeat is younger than ``heartbeat_timeout_s``, finished already, cancelled, missing."""
        return cast(RunStart, self._start(keys=self._keys(run_id)[:2], args=[time.time(), holder, heartbeat_timeout_s]))

    def heartbeat(self, run_id: str, holder: str) -> bool:
        """Record that ``holder`` is alive; False when it no longer holds the run (taken over, or finished)."""
        return bool(self._heartbeat(keys=[TrainingKeys(run_id).record], args=[time.time(), holder]))

    def stop_reason(self, run_id: str, holder: str) -> StopReason | None:
        """Why ``holder`` should stop now: the run was cancelled, or another delivery took it over; else None."""
        cancel, current_holder = self.redis.hmget(TrainingKeys(run_id).record, ["cancel", "holder"])
        if current_holder != holder:
            return "superseded"
        return "cancelled" if cancel == "1" else None

    def rows(self, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The training rows and the validation rows (empty when the run splits its own)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(TrainingKeys(run_id).data)
            pipe.get(TrainingKeys(run_id).validation)
            train, validation = pipe.execute()
        if train is None:
            raise self._not_found(run_id)
        return _rows(train), _rows(validation or "")

    def request(self, run_id: str) -> TrainRequest:
        return self.status(run_id).request

    def report(self, run_id: str, progress: TrainingProgress) -> None:
        self.redis.hset(TrainingKeys(run_id).record, "progress", progress.model_dump_json())

    def succeed(self, run_id: str, outcome: TrainingOutcome, holder: str = "") -> bool:
        """Finish as succeeded (only by ``holder`` of a running run, when given); False if it was not."""
        return self._finish_as(run_id, "succeeded", "outcome", outcome.model_dump_json(), holder)

    def fail(self, run_id: str, code: str, message: str, holder: str = "") -> bool:
        error = JobError(code=code, message=message)
        return self._finish_as(run_id, "failed", "error", error.model_dump_json(), holder)

    def mark_cancelled(self, run_id: str, holder: str = "") -> bool:
        error = JobError(code=JobCancelledError.code, message="cancelled while running; nothing was published")
        return self._finish_as(run_id, "cancelled", "error", error.model_dump_json(), holder)

    # -- internals -------------------------------------------------------------------------------
    def _finish_as(self, run_id: str, state: str, field: str, value: str, holder: str) -> bool:
        arguments: list[str | float] = [time.time(), state, field, value, self.ttl_s, holder]
        return bool(self._finish(keys=self._keys(run_id), args=arguments))

    def _keys(self, run_id: str) -> list[str]:
        keys = TrainingKeys(run_id)
        return [keys.record, keys.finished_channel, keys.data, keys.validation]

    @staticmethod
    def _not_found(run_id: str) -> JobNotFoundError:
        return JobNotFoundError(
            f"no training run {run_id!r} (never submitted, or expired); list jobs with `lepton jobs list`"
        )


class RunHeartbeat:
    """While the block runs, a daemon thread records ``holder``'s heartbeat every ``interval_s`` (Redis errors
    are skipped: the next beat tries again). It stops by itself once the holder no longer holds the run."""

    def __init__(self, runs: TrainingRuns, run_id: str, holder: str, interval_s: float) -> None:
        self.runs, self.run_id, self.holder, self.interval_s = runs, run_id, holder, interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                if not self.runs.heartbeat(self.run_id, self.holder):
                    return
            except redis.RedisError as error:
                logger.warning("training run %s: heartbeat not recorded (%s); trying again", self.run_id, error)


def _jsonl(rows: Iterable[dict[str, Any]]) -> tuple[str, int]:
    lines = [unicode_text.dumps(row) for row in rows]
    return "\n".join(lines), len(lines)


def _rows(blob: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in blob.split("\n") if line]


def _status_from_record(record: dict[str, Any]) -> TrainingStatus:
    def optional(field: str) -> float | None:
        return float(record[field]) if field in record else None

    state = record["state"]
    return TrainingStatus(
        id=record["id"],
        tenant=record.get(OWNER_FIELD, DEFAULT_TENANT),
        state=state,
        request=TrainRequest.model_validate_json(record["request"]),
        train_rows=int(record.get("train_rows", 0)),
        validation_rows=int(record.get("validation_rows", 0)),
        created_at=float(record["created_at"]),
        started_at=optional("started_at"),
        finished_at=optional("finished_at"),
        attempts=int(record.get("attempts", 0)),
        progress=TrainingProgress.model_validate_json(record["progress"]),
        outcome=TrainingOutcome.model_validate_json(record["outcome"]) if "outcome" in record else None,
        error=JobError.model_validate_json(record["error"]) if "error" in record else None,
    )


__all__ = ["RunHeartbeat", "RunStart", "StopReason", "TrainingRuns"]
