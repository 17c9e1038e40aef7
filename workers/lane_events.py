"""Batches of the interactive lane told as Celery task events, so that Flower lists the interactive lane
beside the bulk lane's tasks (with its run time per batch, and in its metrics per task name).

Interactive requests are stream entries, not Celery messages (workers/interactive.py), so Celery sends no
events for them. A ``task-succeeded`` event carries everything Flower shows: the name
``lepton.lane.interactive``, the batches, requests, texts and tenants as its arguments, the outcomes as its
result and the mean run time of a batch. A process sends at most one every MIN_EVENT_INTERVAL_S (the first
batch after a pause at once): under load an event sums the batches since the last one, since a broker
publish costs about as much as storing a batch's answers. Events are for watching: one that cannot be sent
is logged, never fails a batch.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from typing import Any

from lepton_runtime.constants import INTERACTIVE_BATCH_EVENT_NAME
from lepton_runtime.jobs.lanes import LaneRequest

logger = logging.getLogger(__name__)

MIN_EVENT_INTERVAL_S = 0.1


class CeleryBatchEvents:
    """Made in the interactive consumer's thread: its dispatcher holds a broker connection of its own."""

    def __init__(self, app: Any, hostname: str) -> None:
        self.app = app
        self.hostname = hostname
        self._dispatcher: Any = None
        self._sent_at = -math.inf
        self._reset()

    def _reset(self) -> None:
        self._batches = self._requests = self._texts = 0
        self._runtime_s = 0.0
        self._tenants: set[str] = set()
        self._outcomes: Counter[str] = Counter()

    def batch_done(self, outcomes: list[tuple[LaneRequest, str]], runtime_s: float) -> None:
        self._batches += 1
        self._requests += len(outcomes)
        self._texts += sum(len(request.texts) for request, _ in outcomes)
        self._runtime_s += runtime_s
        self._tenants.update(request.tenant for request, _ in outcomes)
        self._outcomes.update(outcome for _, outcome in outcomes)
        if time.monotonic() - self._sent_at >= MIN_EVENT_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Send what the batches since the last event did (the consumer calls it when the lane is idle)."""
        if not self._batches:
            return
        fields = {
            "uuid": f"lane-{uuid.uuid4().hex}",
            "name": INTERACTIVE_BATCH_EVENT_NAME,
            "args": f"[batches={self._batches}, requests={self._requests}, texts={self._texts}, "
            f"tenants={','.join(sorted(self._tenants))}]",
            "kwargs": "{}",
            "result": ", ".join(f"{count} {outcome}" for outcome, count in sorted(self._outcomes.items())),
            "runtime": self._runtime_s / self._batches,
            "retries": 0,
            "timestamp": time.time(),
        }
        self._reset()
        self._sent_at = time.monotonic()
        try:
            if self._dispatcher is None:
                self._dispatcher = self.app.events.Dispatcher(
                    self.app.connection_for_write(), hostname=self.hostname, enabled=True
                )
            self._dispatcher.send("task-succeeded", **fields)
        except Exception as error:  # the broker's errors, of any client library: the answers are stored already
            logger.warning("interactive lane: an event for Flower was not sent (%s)", error)
            self.close()

    def close(self) -> None:
        if self._dispatcher is not None:
            try:
                self._dispatcher.close()
            finally:
                self._dispatcher = None
