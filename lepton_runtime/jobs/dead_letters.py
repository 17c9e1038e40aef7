"""Dead letters: tasks that failed for good, kept per queue with their cause until replayed or dropped."""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Iterable
from typing import Any, cast

import redis
from pydantic import BaseModel, Field

from lepton_runtime import unicode_text
from lepton_runtime.constants import (
    BULK_CHUNK_TASK,
    DEFAULT_JOB_TTL_S,
    DEFAULT_TENANT,
    INFERENCE_QUEUE,
    KNOWN_QUEUES,
)
from lepton_runtime.errors import JobNotFoundError
from lepton_runtime.jobs.keys import CHUNK_TASK_MARK, dead_letter_key
from lepton_runtime.jobs.owners import owner_of


class DeadLetter(BaseModel):
    """One task that will not succeed by itself: what it was, why it failed, how often it was tried."""

    id: str = Field(description="The task id; `lepton dlq replay ID` sends the task again.")
    tenant: str = Field(default=DEFAULT_TENANT, description="The tenant whose work the task was.")
    queue: str
    task: str
    args: list[Any] = Field(description="The task's arguments (a bulk chunk's are a reference: job id, chunk).")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    payload_ref: str | None = Field(default=None, description="Where a bulk chunk's texts live in Redis.")
    code: str = Field(description="Stable error code, e.g. worker_lost, corrupt_model, internal_error.")
    message: str
    traceback: str | None = None
    attempts: int = Field(description="Deliveries and retries that ran before it was dead-lettered.")
    first_seen: float
    last_seen: float


class DeadLetterStore:
    """The ``lepton:dlq:<queue>`` hashes: add (merging repeats of one task), list, take out."""

    def __init__(self, client: redis.Redis, *, ttl_s: int = DEFAULT_JOB_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    def add(self, letter: DeadLetter) -> DeadLetter:
        """Record a dead letter; a task dead-lettered again keeps its first_seen and adds its attempts. A letter
        that does not name its tenant is its work's (the job of a bulk chunk, the run or request of its id)."""
        if "tenant" not in letter.model_fields_set:
            work_id = str(letter.args[0]) if letter.task == BULK_CHUNK_TASK and letter.args else letter.id
            letter = letter.model_copy(update={"tenant": owner_of(self.redis, work_id) or DEFAULT_TENANT})
        key = dead_letter_key(letter.queue)
        previous = self.redis.hget(key, letter.id)
        if previous:
            earlier = _letter(cast(str, previous))
            letter = letter.model_copy(
                update={"first_seen": earlier.first_seen, "attempts": earlier.attempts + letter.attempts}
            )
        with self.redis.pipeline() as pipe:
            pipe.hset(key, letter.id, _json(letter))
            pipe.expire(key, self.ttl_s)
            pipe.execute()
        return letter

    def list(self, queue: str | None = None, *, tenant: str | None = None) -> builtins.list[DeadLetter]:
        """Every dead letter (of one queue, or of all known ones; of one tenant, or of all), oldest first."""
        letters = []
        for name in [queue] if queue else self._queues():
            letters += [_letter(raw) for raw in self.redis.hvals(dead_letter_key(name))]
        letters = [letter for letter in letters if tenant is None or letter.tenant == tenant]
        return sorted(letters, key=lambda letter: letter.first_seen)

    def tenant_of(self, letter_id: str) -> str | None:
        """The tenant of one dead letter (None: there is none), read from every queue in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for name in self._queues():
                pipe.hget(dead_letter_key(name), letter_id)
            found = [raw for raw in pipe.execute() if raw is not None]
        return _letter(found[0]).tenant if found else None

    def take(self, letter_id: str) -> DeadLetter:
        """Remove one dead letter and return it (to replay it)."""
        for name in self._queues():
            raw = self.redis.hget(dead_letter_key(name), letter_id)
            if raw is not None and self.redis.hdel(dead_letter_key(name), letter_id):
                return _letter(cast(str, raw))
        raise self.not_found(letter_id)

    def discard_chunks(self, job_id: str, chunks: Iterable[int]) -> int:
        """Remove the dead letters of a job's chunks that were sent again (`lepton jobs retry`): the retry resolves
        them, and a chunk that fails again is dead-lettered anew. Returns how many there were."""
        wanted = {int(chunk) for chunk in chunks}
        if not wanted:
            return 0
        key = dead_letter_key(INFERENCE_QUEUE)
        found = [
            letter_id
            for letter_id, raw in self.redis.hscan_iter(key, match=f"{job_id}{CHUNK_TASK_MARK}*", count=500)
            if (letter := _letter(raw)).task == BULK_CHUNK_TASK and int(letter.args[1]) in wanted
        ]
        return int(self.redis.hdel(key, *found)) if found else 0

    @staticmethod
    def not_found(letter_id: str) -> JobNotFoundError:
        return JobNotFoundError(f"no dead letter {letter_id!r}; see them with `lepton dlq list`")

    def _queues(self) -> builtins.list[str]:
        prefix = dead_letter_key("")
        found = {cast(str, key)[len(prefix) :] for key in self.redis.scan_iter(match=f"{prefix}*", count=100)}
        return sorted(found | set(KNOWN_QUEUES))


def new_dead_letter(**fields: Any) -> DeadLetter:
    """A dead letter first and last seen now."""
    now = time.time()
    return DeadLetter(first_seen=now, last_seen=now, **fields)


def _json(letter: DeadLetter) -> str:
    """A dead letter as stored, whatever its arguments hold (a text with a lone surrogate is escaped, not fatal)."""
    return unicode_text.dumps(letter.model_dump(mode="json"))


def _letter(raw: str | bytes) -> DeadLetter:
    # the standard parser: pydantic's refuses the escape of a lone surrogate that _json may have written
    return DeadLetter.model_validate(json.loads(raw))
