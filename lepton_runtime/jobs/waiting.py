"""Waiting for a bulk job or a training run to finish: woken by its finished channel, never by polling alone,
and carried through a Redis outage (a restart, a failover) by reconnecting with backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

import redis
from redis.backoff import ExponentialWithJitterBackoff

from lepton_runtime.errors import JobTimeoutError

# Seconds between two status reads while nothing is published and no deadline is near.
IDLE_WAKE_S = 60.0
# A wait rides out a Redis outage this long (or until its own deadline), reconnecting with backoff between tries.
MAX_OUTAGE_S = 300.0
OUTAGE_BACKOFF = ExponentialWithJitterBackoff(base=0.2, cap=5.0)

Result = TypeVar("Result")


class Finishable(Protocol):
    @property
    def finished(self) -> bool: ...


Status = TypeVar("Status", bound=Finishable)


def wait_until_finished(
    client: redis.Redis,
    channel: str,
    read_status: Callable[[], Status],
    timeout_s: float | None,
    *,
    timed_out: Callable[[Status], JobTimeoutError],
    on_progress: Callable[[Status], None] | None = None,
    progress_interval_s: float = 0.5,
) -> Status:
    """Read the status until it is final; between reads, sleep on ``channel`` (or ``progress_interval_s``
    when someone follows the progress); raise ``timed_out(status)`` after ``timeout_s``.

    While Redis does not answer, try again with backoff until it does, the deadline passes or
    ``MAX_OUTAGE_S`` went by; then the last connection error is raised.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
    through_outages(lambda: pubsub.subscribe(channel), deadline)
    try:
        while True:
            status = through_outages(read_status, deadline)  # read after subscribing: no finish slips between
            if on_progress:
                on_progress(status)
            if status.finished:
                return status
            left_s = None if deadline is None else deadline - time.monotonic()
            if left_s is not None and left_s <= 0:
                raise timed_out(status)
            step_s = progress_interval_s if on_progress else (left_s if left_s is not None else IDLE_WAKE_S)
            wake_s = step_s if left_s is None else min(step_s, left_s)
            through_outages(partial(pubsub.get_message, timeout=wake_s), deadline)  # resubscribes on reconnect
    finally:
        pubsub.close()


def through_outages(call: Callable[[], Result], deadline: float | None) -> Result:
    """``call()``, tried again with backoff while Redis does not answer, up to ``deadline`` or ``MAX_OUTAGE_S``."""
    outage_ends_at: float | None = None
    failures = 0
    while True:
        try:
            return call()
        except redis.AuthenticationError:
            raise  # a wrong password does not heal by waiting
        except (redis.ConnectionError, redis.TimeoutError):
            now = time.monotonic()
            if outage_ends_at is None:
                outage_ends_at = now + MAX_OUTAGE_S if deadline is None else min(deadline, now + MAX_OUTAGE_S)
            if now >= outage_ends_at:
                raise
            failures += 1
            time.sleep(min(OUTAGE_BACKOFF.compute(failures), outage_ends_at - now))  # backoff, not a sync
