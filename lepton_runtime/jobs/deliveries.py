"""Delivery counters: how many times a message started running without finishing (its worker died)."""

from __future__ import annotations

import redis

from lepton_runtime.constants import DEFAULT_JOB_TTL_S
from lepton_runtime.jobs.keys import delivery_counter_key


class DeliveryCounter:
    """Counts the starts of a task id that never finished; a finished run (success, failure or retry)
    clears the count.

    Celery redelivers an unacknowledged message forever when its worker dies; with this counter a
    worker sees that a message already killed N workers and dead-letters it instead of running it.
    A first delivery costs nothing: the broker marks every message it gives back as redelivered
    (kombu sets ``delivery_info["redelivered"]``), and only those are counted in Redis.
    """

    def __init__(self, client: redis.Redis, *, ttl_s: int = DEFAULT_JOB_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    def started(self, task_id: str, *, redelivered: bool) -> int:
        """Count one more start; return the number of starts, this one included."""
        if not redelivered:
            return 1
        with self.redis.pipeline() as pipe:
            pipe.incr(delivery_counter_key(task_id))
            pipe.expire(delivery_counter_key(task_id), self.ttl_s)
            redeliveries, _ = pipe.execute()
        return int(redeliveries) + 1

    def finished(self, task_id: str, *, redelivered: bool) -> None:
        if redelivered:
            self.redis.delete(delivery_counter_key(task_id))
