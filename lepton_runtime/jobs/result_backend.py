"""Celery's Redis result backend, storing a task's result in one round trip instead of three.

Celery stores a result as GET (to keep a SUCCESS already stored by a twin delivery), then
MULTI/SET/PUBLISH/EXEC. Here one Lua script does the same atomically: it also closes the window
in which a twin could write between the GET and the SET. Everything else (waiting through
pub/sub, expiry, forgetting) is Celery's own.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.redis import RedisBackend, SentinelBackend
from celery.exceptions import BackendStoreError

from lepton_runtime.jobs.scripts import STORE_UNLESS_SUCCEEDED


class LeptonResultBackend(RedisBackend):  # type: ignore[misc]
    """RedisBackend with the one-round-trip store; named by path in protocol.celery_config (with Sentinels, the
    subclass below)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store_script = self.client.register_script(STORE_UNLESS_SUCCEEDED)

    def encoded(self, task_id: str, result: Any, state: str) -> tuple[str, str, int]:
        """What storing a result writes, without writing it: (result key, encoded meta, TTL in seconds). The
        interactive lane stores a batch's answers with its own script (jobs/lanes.py)."""
        meta = self._get_result_meta(
            result=self.encode_result(result, state), state=state, traceback=None, request=None
        )
        meta["task_id"] = task_id
        ttl_s = self.failure_expires if state == states.FAILURE else self.expires
        key = self.get_key_for_task(task_id)
        return key.decode() if isinstance(key, bytes) else key, self.encode(meta), int(ttl_s or 0)

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


class LeptonSentinelResultBackend(LeptonResultBackend, SentinelBackend):  # type: ignore[misc]
    """The same store on the primary that Redis Sentinels name."""
