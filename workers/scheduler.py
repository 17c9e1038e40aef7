"""Turns on the model between the two lanes of one worker process: interactive work first, one batch of
bulk work at most in its way, and bulk work never below its minimum share of the process's time.

The bulk lane (a chunk task, or a large ``lepton.classify``) asks for a turn before each ONNX Runtime
batch; the interactive consumer asks before each batch of requests. Only one batch runs at a time, so
the process never runs two sessions on its one core, and an interactive request that arrives while a
bulk batch runs waits for that batch only. When both lanes wait, interactive goes first unless the
bulk lane's share of the recent time (decaying over ``window_s``) is below ``bulk_min_share``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from lepton_runtime.constants import DEFAULT_BULK_MIN_SHARE

Lane = Literal["interactive", "bulk"]
LANES: tuple[Lane, Lane] = ("interactive", "bulk")
# The time constant of the shares: what the lanes used in the last second or so counts.
DEFAULT_SHARE_WINDOW_S = 1.0


class LaneScheduler:
    """A fair turn-taking lock for two lanes; ``with scheduler.turn("bulk"): run_one_batch()``."""

    def __init__(
        self,
        *,
        bulk_min_share: float = DEFAULT_BULK_MIN_SHARE,
        window_s: float = DEFAULT_SHARE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= bulk_min_share <= 1.0:
            raise ValueError(f"bulk_min_share: {bulk_min_share} is outside 0..1")
        self.bulk_min_share = bulk_min_share
        self.window_s = window_s
        self.clock = clock
        self._condition = threading.Condition()
        self._running: Lane | None = None
        self._waiting: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._used_s: dict[Lane, float] = dict.fromkeys(LANES, 0.0)
        self._decayed_at = clock()
        self.turns: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._last_turn_at: dict[Lane, float] = dict.fromkeys(LANES, -math.inf)

    @contextmanager
    def turn(self, lane: Lane) -> Iterator[None]:
        """Wait for ``lane``'s turn, hold it for the block, then give it to whoever is next."""
        with self._condition:
            self._waiting[lane] += 1
            try:
                self._condition.wait_for(lambda: self._may_run(lane))
            finally:
                self._waiting[lane] -= 1
            self._running = lane
            self.turns[lane] += 1
            self._last_turn_at[lane] = self.clock()
        started = self.clock()
        try:
            yield
        finally:
            with self._condition:
                self._decay()
                self._used_s[lane] += self.clock() - started
                self._running = None
                self._condition.notify_all()

    def charge(self, lane: Lane, seconds: float) -> None:
        """Count work a lane did outside its turns (reading, answering) in its share."""
        with self._condition:
            self._decay()
            self._used_s[lane] += max(0.0, seconds)

    def interactive_active(self, *, within_s: float) -> bool:
        """Whether the interactive lane took (or waits for) a turn within the last ``within_s`` seconds."""
        with self._condition:
            return self._waiting["interactive"] > 0 or self.clock() - self._last_turn_at["interactive"] <= within_s

    def bulk_pressed(self) -> bool:
        """Whether interactive work presses the bulk lane toward its minimum share: bulk's recent share is under
        twice the minimum (interactive overload; a chunk asks once, when it starts, while the share swings
        around the minimum from turn to turn)."""
        with self._condition:
            self._decay()
            return self._share_of_bulk() < 2 * self.bulk_min_share

    def bulk_share(self) -> float:
        """The bulk lane's share of the time both lanes used recently (1.0 when neither ran)."""
        with self._condition:
            self._decay()
            return self._share_of_bulk()

    # -- internals -----------------------------------------------------------------------------------
    def _may_run(self, lane: Lane) -> bool:
        if self._running is not None:
            return False
        other: Lane = "bulk" if lane == "interactive" else "interactive"
        if self._waiting[other] == 0:
            return True
        self._decay()
        bulk_behind = self._share_of_bulk() < self.bulk_min_share
        return (lane == "bulk") == bulk_behind

    def _share_of_bulk(self) -> float:
        total = self._used_s["bulk"] + self._used_s["interactive"]
        return self._used_s["bulk"] / total if total > 0 else 1.0

    def _decay(self) -> None:
        now = self.clock()
        factor = math.exp(-(now - self._decayed_at) / self.window_s)
        for lane in LANES:
            self._used_s[lane] *= factor
        self._decayed_at = now
