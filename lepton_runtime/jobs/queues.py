"""What waits in each broker queue: message counts across Celery's priority lists (what autoscalers read)."""

from __future__ import annotations

import redis

from lepton_runtime.constants import KNOWN_QUEUES, REDIS_KEY_PREFIX
from lepton_runtime.jobs.protocol import PRIORITY_STEPS

# kombu's Redis transport keeps one list per priority step: "<queue>", "<queue>\x06\x163", ...
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"


def queue_lists(queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s waiting messages, highest priority first."""
    base = f"{REDIS_KEY_PREFIX}{queue}"
    return [base if step == 0 else f"{base}{KOMBU_PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def queue_depths(client: redis.Redis, queues: tuple[str, ...] = KNOWN_QUEUES) -> dict[str, int]:
    """Messages waiting (not yet taken by a worker) per queue, read in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in queue_lists(queue):
                pipe.llen(key)
        lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {queue: sum(lengths[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}
