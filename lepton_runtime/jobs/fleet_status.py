"""What each worker process holds, told through Redis: host, worker, the versions loaded, its model cache and whether
the model store answers. ``lepton workers`` and the API's readiness read it.

Each process rewrites its own entry of one hash every REPORT_INTERVAL_S; an entry older than STALE_AFTER_S is a
process gone (killed, or its host cut off) and is left out of what readers see.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from pydantic import BaseModel, Field

from lepton_runtime.jobs.keys import FLEET_KEY

REPORT_INTERVAL_S = 5.0
STALE_AFTER_S = 30.0


class ProcessStatus(BaseModel):
    """One worker process as it last reported itself."""

    host: str
    worker: str
    pid: int
    loaded: list[str] = Field(default_factory=list, description="Exact versions loaded (name@N).")
    following: dict[str, str] = Field(default_factory=dict, description="Alias -> the version it names now.")
    cache_bytes: int | None = Field(default=None, description="This host's model copies (object store only).")
    store_error: str | None = Field(default=None, description="Why the model store did not answer; None: it did.")
    problems: dict[str, str] = Field(
        default_factory=dict, description="Alias -> why it could not be loaded (error code: message); tried again."
    )
    ready: bool = Field(
        default=True, description="False while a model it follows waits for the store: it takes no one-text request."
    )
    reported_at: float = 0.0

    @property
    def behind(self) -> list[str]:
        """The aliases whose version this process has not loaded (it lags behind them)."""
        return [alias for alias, version in self.following.items() if version not in self.loaded]


def report(client: redis.Redis, status: ProcessStatus) -> None:
    status.reported_at = time.time()
    client.hset(FLEET_KEY, f"{status.host}:{status.pid}", status.model_dump_json())


def forget(client: redis.Redis, host: str, pid: int) -> None:
    client.hdel(FLEET_KEY, f"{host}:{pid}")


def fleet(client: redis.Redis) -> list[ProcessStatus]:
    """Every live worker process, by host and worker; entries gone stale are dropped from Redis too."""
    now = time.time()
    live: list[ProcessStatus] = []
    stale: list[str] = []
    entries: dict[str, Any] = client.hgetall(FLEET_KEY)  # type: ignore[assignment]
    for field_name, raw in entries.items():
        status = ProcessStatus.model_validate(json.loads(raw))
        if now - status.reported_at <= STALE_AFTER_S:
            live.append(status)
        else:
            stale.append(field_name)
    if stale:
        client.hdel(FLEET_KEY, *stale)
    return sorted(live, key=lambda status: (status.host, status.worker, status.pid))
