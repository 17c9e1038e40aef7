"""Delivery counters: how many times a message started running without finishing (its worker died)."""

from __future__ import annotations

import redis

from lepton_runtime.constants import DEFAULT_JOB_TTL_S
from lepton_runtime.jobs.keys import delivery_counter_key


class DeliveryCounter:
    """Counts starts of a task id; a finished run (success, failure or retry) clears the count.

    Celery redelivers an unacknowledged message forever when its worker dies; with this counter a
    worker sees that a message already killed N workers and dead-letters it instead of running it.
    """

    def __init__(self, client: redis.Redis, *, ttl_s: int = DEFAULT_JOB_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    def started(self, task_id: str) -> int:
        """Count one more start; return the number of starts, this one included."""
        with self.redis.pipeline() as pipe:
            pipe.incr(delivery_counter_key(task_id))
            pipe.expire(delivery_counter_key(task_id), self.ttl_s)
            count, _ = pipe.execute()
        return int(count)

    def finished(self, task_id: str) -> None:
        self.redis.delete(delivery_counter_key(task_id))
