"""Each batch of the interactive lane told as a Celery task event, so that Flower lists the interactive lane
beside the bulk lane's tasks (with its run time per batch, and in its metrics per task name).

Interactive requests are stream entries, not Celery messages (workers/interactive.py), so Celery sends no
events for them. One ``task-succeeded`` event per batch carries everything Flower shows: the name
``lepton.lane.interactive``, the requests and tenants as its arguments, the outcomes as its result and
the batch's run time. Events are for watching: one that cannot be sent is logged, never fails the batch.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from typing import Any

from lepton_runtime.constants import INTERACTIVE_BATCH_EVENT_NAME
from lepton_runtime.jobs.lanes import LaneRequest

logger = logging.getLogger(__name__)


class CeleryBatchEvents:
    """Made in the interactive consumer's thread: its dispatcher holds a broker connection of its own."""

    def __init__(self, app: Any, hostname: str) -> None:
        self.app = app
        self.hostname = hostname
        self._dispatcher: Any = None

    def batch_done(self, outcomes: list[tuple[LaneRequest, str]], runtime_s: float) -> None:
        counts = Counter(outcome for _, outcome in outcomes)
        tenants = sorted({request.tenant for request, _ in outcomes})
        texts = sum(len(request.texts) for request, _ in outcomes)
        try:
            if self._dispatcher is None:
                self._dispatcher = self.app.events.Dispatcher(
                    self.app.connection_for_write(), hostname=self.hostname, enabled=True
                )
            self._dispatcher.send(
                "task-succeeded",
                uuid=f"lane-{uuid.uuid4().hex}",
                name=INTERACTIVE_BATCH_EVENT_NAME,
                args=f"[{len(outcomes)} requests, {texts} texts, tenants {', '.join(tenants)}]",
                kwargs="{}",
                result=", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items())),
                runtime=runtime_s,
                retries=0,
                timestamp=time.time(),
            )
        except Exception as error:  # the broker's errors, of any client library: the answers are stored already
            logger.warning("interactive lane: the batch's event for Flower was not sent (%s)", error)
            self.close()

    def close(self) -> None:
        if self._dispatcher is not None:
            try:
                self._dispatcher.close()
            finally:
                self._dispatcher = None
