"""Replaying dead letters: a bulk chunk goes back to its job (marked queued) before its task is sent again."""

from __future__ import annotations

from celery import Celery

from lepton_runtime.constants import BULK_CHUNK_TASK
from lepton_runtime.jobs import DeadLetter, DeadLetterStore, JobStore
from lepton_runtime.jobs.protocol import BULK_PRIORITY, INTERACTIVE_PRIORITY


def replay(letter_id: str, letters: DeadLetterStore, jobs: JobStore, app: Celery) -> DeadLetter:
    """Take one dead letter out and send its task again under the same id (its result lands where the
    caller and Flower look); return the letter."""
    letter = letters.take(letter_id)
    priority = INTERACTIVE_PRIORITY
    if letter.task == BULK_CHUNK_TASK:
        job_id, chunk = str(letter.args[0]), int(letter.args[1])
        jobs.requeue_failed(job_id, [chunk])
        priority = BULK_PRIORITY
    app.AsyncResult(letter.id).forget()  # the old failure must not answer for the new run
    app.send_task(
        letter.task, args=letter.args, kwargs=letter.kwargs, queue=letter.queue, priority=priority, task_id=letter.id
    )
    return letter
