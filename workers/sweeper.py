"""The lost-message sweep of every worker: a timer of the worker's event loop that sends again the chunks of stalled
bulk jobs and the training runs whose message Redis lost or whose holder went silent (lepton_runtime.jobs.repair);
one worker of the fleet sweeps at a time."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery, bootsteps
from kombu.exceptions import OperationalError

from lepton_runtime.jobs import connect_with
from lepton_runtime.jobs.keys import LOST_CHUNK_SWEEP_LOCK_KEY
from lepton_runtime.jobs.repair import lost_chunks, lost_training_runs
from lepton_runtime.jobs.sending import send_chunks, send_training
from lepton_runtime.settings import LeptonSettings

logger = logging.getLogger(__name__)

# Sweeps happen every this many restore intervals of kombu (LEPTON_RESTORE_INTERVAL_S).
RESTORE_INTERVALS_PER_SWEEP = 5


def sweep_interval_s(settings: LeptonSettings) -> float:
    return settings.restore_interval_s * RESTORE_INTERVALS_PER_SWEEP


def stalled_after_s(settings: LeptonSettings) -> float:
    """No chunk started or finished for this long: any message held by a dead worker has been given back by
    then (visibility timeout plus restore scans), so a chunk with no message anywhere is lost."""
    return settings.visibility_timeout_s + 2 * settings.restore_interval_s


class LostMessageSweeper:
    """One sweep: take the fleet's lock, find the lost chunks and training runs, send them again."""

    def __init__(self, celery: Celery, settings: LeptonSettings, worker_name: str) -> None:
        self.celery = celery
        self.redis = connect_with(settings)
        self.interval_s = sweep_interval_s(settings)
        self.stalled_after_s = stalled_after_s(settings)
        self.heartbeat_timeout_s = settings.train_heartbeat_timeout_s
        self.worker_name = worker_name

    def sweep(self) -> tuple[dict[str, list[int]], list[str]]:
        """The chunks sent again, per job, and the training runs sent again (empty when another worker holds the
        sweep or nothing is lost)."""
        try:
            if not self.redis.set(LOST_CHUNK_SWEEP_LOCK_KEY, self.worker_name, nx=True, px=int(self.interval_s * 1000)):
                return {}, []
            lost = lost_chunks(self.redis, self.stalled_after_s)
            for job_id, chunks in lost.items():
                logger.warning(
                    "job %s: chunks %s have no message in Redis after %.0f s without progress (lost in a broker "
                    "outage); sending them again",
                    job_id,
                    chunks,
                    self.stalled_after_s,
                )
                send_chunks(self.celery, job_id, chunks)
            runs = lost_training_runs(self.redis, self.stalled_after_s, self.heartbeat_timeout_s)
            for run_id in runs:
                logger.warning(
                    "training run %s has no live holder and no message waiting (lost in a broker outage, never "
                    "sent, or its worker went silent for %.0f s); sending it again",
                    run_id,
                    self.heartbeat_timeout_s,
                )
                send_training(self.celery, run_id)
            return lost, runs
        except (redis.RedisError, OperationalError) as error:  # Redis out of reach: the next sweep tries again
            logger.warning("lost-message sweep skipped: %s", error)
            return {}, []


def install_sweeper(celery: Celery, settings: LeptonSettings, worker_name: str) -> None:
    """Run ``LostMessageSweeper.sweep`` on the worker's timer (the main process's event loop: no extra thread,
    nothing forked mid-sweep) for as long as the worker runs."""

    class LostMessageSweep(bootsteps.StartStopStep):  # type: ignore[misc]
        requires = ("celery.worker.components:Timer",)

        def __init__(self, worker: Any, **options: Any) -> None:
            super().__init__(worker, **options)
            self.sweeper = LostMessageSweeper(celery, settings, worker_name)
            self.timer_entry: Any = None

        def start(self, worker: Any) -> None:
            self.timer_entry = worker.timer.call_repeatedly(self.sweeper.interval_s, self.sweeper.sweep)

        def stop(self, worker: Any) -> None:
            if self.timer_entry is not None:
                self.timer_entry.cancel()

    celery.steps["worker"].add(LostMessageSweep)
