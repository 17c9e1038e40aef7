"""What waits in each broker queue: message counts across Celery's priority lists (what autoscalers read)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from lepton_runtime.constants import KNOWN_QUEUES, PRIORITY_STEPS
from lepton_runtime.jobs.keys import queue_lists


def queue_depths(client: redis.Redis, queues: tuple[str, ...] = KNOWN_QUEUES) -> dict[str, int]:
    """Messages waiting (not yet taken by a worker) per queue, read in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in queue_lists(queue):
                pipe.llen(key)
        lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {queue: sum(lengths[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}


# Header every message carries from its producer: when it was sent (seconds since the epoch).
ENQUEUED_AT_HEADER = "lepton_enqueued_at"


def oldest_enqueued_at(client: redis.Redis, queue: str) -> float | None:
    """When the oldest waiting message of ``queue`` was sent (kombu pushes left and pops right: the
    oldest of each list is its last element), or None when nothing waits."""
    with client.pipeline(transaction=False) as pipe:
        for key in queue_lists(queue):
            pipe.lindex(key, -1)
        tails = pipe.execute()
    times = []
    for raw in tails:
        if raw is None:
            continue
        try:
            sent = json.loads(raw).get("headers", {}).get(ENQUEUED_AT_HEADER)
        except (ValueError, AttributeError):
            continue  # not a message of ours (or not JSON): it has no age to report
        if isinstance(sent, int | float):
            times.append(float(sent))
    return min(times) if times else None


def _stamp_enqueue_time(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(ENQUEUED_AT_HEADER, time.time())


def stamp_enqueue_times() -> None:
    """Stamp every message this process publishes with the time it was sent (for the queue-age metric)."""
    from celery import signals

    signals.before_task_publish.connect(_stamp_enqueue_time, weak=False, dispatch_uid="lepton.stamp_enqueue_time")
