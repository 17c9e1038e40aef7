"""Waiting for a bulk job or a training run to finish: woken by its finished channel, never by polling alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import redis

from lepton_runtime.errors import JobTimeoutError

# Seconds between two status reads while nothing is published and no deadline is near.
IDLE_WAKE_S = 60.0


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
    when someone follows the progress); raise ``timed_out(status)`` after ``timeout_s``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel)
    try:
        while True:
            status = read_status()  # read after subscribing: no finish slips between
            if on_progress:
                on_progress(status)
            if status.finished:
                return status
            left_s = None if deadline is None else deadline - time.monotonic()
            if left_s is not None and left_s <= 0:
                raise timed_out(status)
            step_s = progress_interval_s if on_progress else (left_s if left_s is not None else IDLE_WAKE_S)
            pubsub.get_message(timeout=step_s if left_s is None else min(step_s, left_s))
    finally:
        pubsub.close()
