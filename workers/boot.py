"""Worker boot: each pool process builds its runtime and warms its models after the fork, then says it is ready."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from workers import runtime

logger = logging.getLogger(__name__)


def _warm_pool_process(**_: Any) -> None:
    """In each prefork child, before its first task: sessions are created here, never in the parent."""
    runtime.current().warm()


def _warm_main_process(sender: Any = None, **_: Any) -> None:
    """With the solo or threads pool the main process runs the tasks, so it warms itself."""
    if runtime.pool_kind() != "prefork":
        runtime.current().warm()


def connect_signals() -> None:
    signals.worker_process_init.connect(_warm_pool_process, dispatch_uid="lepton.warm_pool_process", weak=False)
    signals.worker_ready.connect(_warm_main_process, dispatch_uid="lepton.warm_main_process", weak=False)
