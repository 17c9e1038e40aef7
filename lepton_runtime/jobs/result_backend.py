"""Celery's Redis result backend, storing a task's result in one round trip instead of three.

Celery stores a result as GET (to keep a SUCCESS already stored by a twin delivery), then
MULTI/SET/PUBLISH/EXEC. Here one Lua script does the same atomically: it also closes the window
in which a twin could write between the GET and the SET. Everything else (waiting through
pub/sub, expiry, forgetting) is Celery's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError

from lepton_runtime.jobs.keys import answer_list_key

# KEYS[1] the task's result key; ARGV: encoded meta, TTL in seconds (0: none). -> 1 stored, 0 kept.
STORE_UNLESS_SUCCEEDED = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then return 0 end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
if KEYS[2] then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
end
return 1
"""
# An interactive answer's notice (jobs/keys.py answer_list_key) waits this long for its client (seconds).
ANSWER_NOTICE_TTL_S = 60


class LeptonResultBackend(RedisBackend):  # type: ignore[misc]
    """RedisBackend with the one-round-trip store; named by path in protocol.celery_config."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store_script = self.client.register_script(STORE_UNLESS_SUCCEEDED)

    def store_many(self, results: Sequence[tuple[str, Any, str]]) -> None:
        """Store ``(task_id, result or exception, state)`` of many tasks in one round trip (the interactive
        lane answers a whole batch at once); waiting clients are woken through pub/sub as for one, and
        through each task's answer list (``ClassifyJob.wait`` of the interactive lane blocks on it)."""
        if not results:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for task_id, result, state in results:
                meta = self._get_result_meta(
                    result=self.encode_result(result, state), state=state, traceback=None, request=None
                )
                meta["task_id"] = task_id
                ttl_s = self.failure_expires if state == states.FAILURE else self.expires
                self._store_script(
                    keys=[self.get_key_for_task(task_id), answer_list_key(task_id)],
                    args=[self.encode(meta), int(ttl_s or 0), ANSWER_NOTICE_TTL_S],
                    client=pipe,
                )
            pipe.execute()

    def _store_result(
        self,
        task_id: str | bytes,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = task_id.decode() if isinstance(task_id, bytes) else task_id
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError("value too large for Redis backend", state=state, task_id=task_id)
        ttl_s = self.failure_expires if state == states.FAILURE else self.expires
        self.ensure(self._store_script, ([self.get_key_for_task(task_id)], [value, int(ttl_s or 0)]))
        return result
