"""Alias moves told through Redis: a counter every mover raises, which producers and workers read to notice them.

Whoever moves an alias (``lepton models promote``, a training run, the API) raises ``lepton:registry:epoch`` after the
move; a producer keeps the versions its aliases resolved to while the counter stays put, and every worker process
reads it each second and loads (and warms) the version an alias it serves now names, beside the old one, then says
so (``lepton:registry:warm:<name@N>``). A producer that sees the move keeps sending the old version until a worker
says the new one is warm (or SWITCH_AFTER_S passed), so no request waits for a load. The counter is the
notification; a mover that cannot reach Redis is not stopped by it: readers also look at the registry itself every
ALIAS_RECHECK_S, the fallback, so a move reaches everyone within that in any case.
"""

from __future__ import annotations

import logging

import redis

from lepton_runtime.constants import REDIS_KEY_PREFIX

logger = logging.getLogger(__name__)

REGISTRY_EPOCH_KEY = f"{REDIS_KEY_PREFIX}registry:epoch"
# Readers look at the registry at least this often even when the counter stays put (a move told to nobody).
ALIAS_RECHECK_S = 5.0
# A mover waits this long for Redis before it gives up telling (the move itself is done).
ANNOUNCE_TIMEOUT_S = 1.0
# A producer that sees an alias move keeps the old version until a worker says the new one is warm, or this long.
SWITCH_AFTER_S = 5.0
# How long a worker's "warm" word lasts (it says it again at every look while it holds the version).
WARM_MARK_TTL_S = 3600


class RegistryNotices:
    """Raise the registry's change counter through ``client`` (give it short timeouts, ANNOUNCE_TIMEOUT_S: telling
    never holds a move up for long)."""

    def __init__(self, client: redis.Redis, *, fleet_expected: bool = True) -> None:
        self.redis = client
        # False on the embedded default (no LEPTON_REDIS_URL): a Redis that is not running there means no fleet to tell
        self.fleet_expected = fleet_expected

    def announce(self, name: str) -> None:
        """Tell readers that an alias of ``name`` moved; a Redis that does not answer is logged, not raised."""
        try:
            self.redis.incr(REGISTRY_EPOCH_KEY)
        except redis.RedisError as error:
            if not self.fleet_expected and isinstance(error, redis.ConnectionError):
                logger.debug("moved an alias of %s; no embedded Redis runs, so no fleet to tell (%s)", name, error)
                return
            logger.warning(
                "moved an alias of %s but could not tell the fleet through Redis (%s); workers and producers see the "
                "move within %.0f s anyway", name, error, ALIAS_RECHECK_S,
            )  # fmt: skip


def registry_epoch(client: redis.Redis) -> int:
    """The registry's change counter in the Redis of ``client`` (0 before any move was told)."""
    return int(client.get(REGISTRY_EPOCH_KEY) or 0)


def warm_key(reference: str) -> str:
    return f"{REDIS_KEY_PREFIX}registry:warm:{reference}"


def mark_warm(client: redis.Redis, reference: str) -> None:
    """Say that a worker process has the exact version ``reference`` loaded and warm (producers switch to it then)."""
    client.set(warm_key(reference), 1, ex=WARM_MARK_TTL_S)


def is_warm(client: redis.Redis, reference: str) -> bool:
    """Whether some worker process said it has ``reference`` loaded and warm (within WARM_MARK_TTL_S)."""
    return bool(client.exists(warm_key(reference)))
