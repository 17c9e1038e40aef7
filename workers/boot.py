"""Worker boot: each pool process builds its runtime and warms its models after the fork, then says it is ready."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import signals

from workers import runtime

logger = logging.getLogger(__name__)


def _warm_pool_process(**_: Any) -> None:
    """In each prefork child, before its first task: sessions are created here, never in the parent; then the
    child serves the interactive lane beside its tasks."""
    _warm_and_serve()


def _warm_main_process(sender: Any = None, **_: Any) -> None:
    """With the solo or threads pool the main process runs the tasks, so it warms itself."""
    if runtime.pool_kind() != "prefork":
        _warm_and_serve()


def _warm_and_serve() -> None:
    from celery import current_app

    from workers.lane_events import CeleryBatchEvents

    process = runtime.current()
    process.warm()
    process.follower.start()  # a moved alias: its new version loaded beside the old one (workers/follow.py)
    process.start_interactive(lambda: current_app.backend, lambda: CeleryBatchEvents(current_app, process.options.name))


def _stop_serving(**_: Any) -> None:
    """The process ends: its interactive thread finishes the batch it runs (what it read and did not answer is
    claimed by another process); it stops following aliases."""
    if runtime.is_built():
        runtime.current().stop_interactive()


def _task_started(task_id: str = "", **_: Any) -> None:
    if runtime.metrics_on():
        _timer().start(task_id)


def _task_finished(task_id: str = "", task: Any = None, **_: Any) -> None:
    if runtime.metrics_on():
        from lepton_runtime.jobs.queues import ENQUEUED_AT_HEADER

        enqueued_at = getattr(getattr(task, "request", None), ENQUEUED_AT_HEADER, None)
        _timer().finish(task_id, getattr(task, "name", "?"), enqueued_at if isinstance(enqueued_at, float) else None)


def _task_failed(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    if runtime.metrics_on() and exception is not None:
        from workers.guard import error_code

        _timer().failed(getattr(sender, "name", "?"), error_code(exception))


def _process_gone(**_: Any) -> None:
    """A pool process exits: its interactive thread stops, its live gauges (memory, CPU) leave the scrape."""
    _stop_serving()
    if runtime.metrics_on():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


_task_timer: Any = None


def _timer() -> Any:
    global _task_timer
    if _task_timer is None:
        from lepton_runtime.monitoring.metrics import TaskTimer

        _task_timer = TaskTimer()
    return _task_timer


def connect_signals() -> None:
    for signal, handler in [
        (signals.task_prerun, _task_started),
        (signals.task_postrun, _task_finished),
        (signals.task_failure, _task_failed),
        (signals.worker_process_shutdown, _process_gone),
    ]:
        signal.connect(handler, dispatch_uid=f"lepton.{handler.__name__}", weak=False)
    signals.worker_process_init.connect(_warm_pool_process, dispatch_uid="lepton.warm_pool_process", weak=False)
    signals.worker_ready.connect(_warm_main_process, dispatch_uid="lepton.warm_main_process", weak=False)
    signals.worker_shutdown.connect(_stop_serving, dispatch_uid="lepton.stop_serving", weak=False)
