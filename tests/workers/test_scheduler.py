"""The turns of one worker process between its lanes: interactive first, bulk never below its share."""

from __future__ import annotations

import threading

import pytest

from workers.scheduler import LaneScheduler


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_waiting_interactive_batch_goes_before_the_next_bulk_batch() -> None:
    scheduler = LaneScheduler(bulk_min_share=0.2)
    order: list[str] = []
    bulk_holds = threading.Event()
    release_bulk = threading.Event()

    def bulk() -> None:
        with scheduler.turn("bulk"):
            bulk_holds.set()
            release_bulk.wait(10)
            order.append("bulk-1")
        with scheduler.turn("bulk"):
            order.append("bulk-2")

    def interactive() -> None:
        with scheduler.turn("interactive"):
            order.append("interactive")

    runner = threading.Thread(target=bulk)
    runner.start()
    assert bulk_holds.wait(10)
    asker = threading.Thread(target=interactive)
    asker.start()
    while scheduler._waiting["interactive"] == 0:  # the interactive thread is queued for the turn
        threading.Event().wait(0.001)
    release_bulk.set()
    runner.join(10)
    asker.join(10)
    # the interactive request waited for one bulk batch only, then went before the next one
    assert order == ["bulk-1", "interactive", "bulk-2"]


def test_bulk_keeps_its_share_while_interactive_work_always_waits() -> None:
    clock = ManualClock()
    scheduler = LaneScheduler(bulk_min_share=0.2, clock=clock)
    # both lanes always waiting: decide turn by turn who runs (each turn takes 10 ms of the clock)
    ran = {"interactive": 0.0, "bulk": 0.0}
    for _ in range(2000):
        scheduler._waiting["interactive"] = scheduler._waiting["bulk"] = 1
        lane = "bulk" if scheduler._may_run("bulk") else "interactive"
        assert scheduler._may_run(lane) and not scheduler._may_run("interactive" if lane == "bulk" else "bulk")
        scheduler._waiting = {"interactive": 0, "bulk": 0}
        with scheduler.turn(lane):  # type: ignore[arg-type]
            clock.now += 0.01
        ran[lane] += 0.01
    share = ran["bulk"] / (ran["bulk"] + ran["interactive"])
    assert 0.18 <= share <= 0.25, share
    assert scheduler.bulk_share() == pytest.approx(share, abs=0.05)


def test_alone_a_lane_never_waits_for_its_share() -> None:
    clock = ManualClock()
    scheduler = LaneScheduler(bulk_min_share=0.5, clock=clock)
    for _ in range(50):
        with scheduler.turn("interactive"):
            clock.now += 0.01
    assert scheduler._may_run("interactive"), "nothing else waits: interactive runs although bulk is behind"
    with pytest.raises(ValueError, match="bulk_min_share"):
        LaneScheduler(bulk_min_share=1.5)


def test_work_outside_the_turns_counts_in_the_share() -> None:
    clock = ManualClock()
    scheduler = LaneScheduler(bulk_min_share=0.2, clock=clock)
    with scheduler.turn("bulk"):
        clock.now += 0.01
    scheduler.charge("interactive", 0.09)
    assert scheduler.bulk_share() == pytest.approx(0.1, abs=0.01)
    assert scheduler.interactive_active(within_s=1.0) is False, "charging is not a turn"


def test_bulk_is_pressed_while_its_share_is_under_twice_the_minimum() -> None:
    now = [0.0]
    scheduler = LaneScheduler(bulk_min_share=0.2, clock=lambda: now[0])
    assert not scheduler.bulk_pressed(), "neither lane ran: nothing presses bulk"
    scheduler.charge("interactive", 0.7)
    scheduler.charge("bulk", 0.3)
    assert scheduler.bulk_pressed(), "30% of the time: above the minimum, but pressed toward it"
    scheduler.charge("bulk", 0.3)
    assert not scheduler.bulk_pressed(), "46% of the time: interactive work is no overload"
