"""The Celery app of the workers: the shared protocol, the contract's tasks, and the boot hooks."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from lepton_runtime.constants import INFERENCE_QUEUE
from lepton_runtime.jobs import celery_config
from lepton_runtime.jobs.queues import stamp_enqueue_times
from lepton_runtime.settings import LeptonSettings
from workers import boot
from workers.guard import LeptonTask
from workers.tasks import register_tasks


def create_app(
    settings: LeptonSettings, *, include: Sequence[str] = (), consumes: Sequence[str] = (INFERENCE_QUEUE,)
) -> Celery:
    """A Celery app for ``settings``; ``include`` names extra task modules to import in the worker,
    ``consumes`` the queues it takes (the training queue changes the visibility timeout)."""
    app = Celery("lepton", task_cls=LeptonTask, include=list(include), set_as_current=True)
    app.conf.update(celery_config(settings, consumes=consumes))
    register_tasks(app)
    stamp_enqueue_times()  # dead-letter replays and retries are sent from workers
    boot.connect_signals()
    return app
