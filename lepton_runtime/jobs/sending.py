"""Sending tasks to the broker: a bulk job's chunks (one ``lepton.bulk.chunk`` message per chunk, named after its
job), a training run's ``lepton.train`` message, and dead letters replayed under their own ids."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lepton_runtime.constants import BULK_CHUNK_TASK, INFERENCE_QUEUE, TRAIN_TASK, TRAINING_QUEUE
from lepton_runtime.jobs.dead_letters import DeadLetter, DeadLetterStore
from lepton_runtime.jobs.keys import CHUNK_TASK_MARK, answer_list_key
from lepton_runtime.jobs.protocol import BULK_PRIORITY, INTERACTIVE_PRIORITY

if TYPE_CHECKING:
    from celery import Celery

    from lepton_runtime.jobs.store import JobStore


def chunk_task_id(job_id: str, chunk: int) -> str:
    """A chunk task's id names its job and chunk (Flower shows it; `lepton jobs retry` takes it), and is
    unique per send (a retried chunk is a new message)."""
    return f"{job_id}{CHUNK_TASK_MARK}{chunk}.{uuid.uuid4().hex[:8]}"


def job_of_task(task_or_job_id: str) -> str:
    """The bulk job a chunk task id belongs to (a job id is returned as it is)."""
    return task_or_job_id.split(CHUNK_TASK_MARK, 1)[0]


def send_chunks(celery: Celery, job_id: str, chunks: Iterable[int]) -> None:
    """One message per chunk on the inference queue, at bulk priority, over one broker connection."""
    with celery.producer_or_acquire() as producer:
        for chunk in chunks:
            celery.send_task(
                BULK_CHUNK_TASK,
                args=[job_id, chunk],
                task_id=chunk_task_id(job_id, chunk),
                queue=INFERENCE_QUEUE,
                priority=BULK_PRIORITY,
                producer=producer,
                argsrepr=f"[{job_id!r}, {chunk}] (lepton jobs status {job_id})",  # what Flower shows of its arguments
            )


def send_training(celery: Celery, run_id: str, argsrepr: str | None = None) -> None:
    """The ``lepton.train`` message of a recorded run (its task id is the run id), on the training queue."""
    celery.send_task(TRAIN_TASK, args=[run_id], task_id=run_id, queue=TRAINING_QUEUE, argsrepr=argsrepr)


def replay_dead_letter(letter_id: str, letters: DeadLetterStore, jobs: JobStore, app: Celery) -> DeadLetter:
    """Take one dead letter out and send its task again under the same id (its result lands where the
    caller and Flower look); a bulk chunk goes back to its job (marked queued) first. Returns the letter."""
    letter = letters.take(letter_id)
    priority = INTERACTIVE_PRIORITY
    if letter.task == BULK_CHUNK_TASK:
        job_id, chunk = str(letter.args[0]), int(letter.args[1])
        jobs.requeue_failed(job_id, [chunk])
        priority = BULK_PRIORITY
    app.AsyncResult(letter.id).forget()  # the old failure must not answer for the new run
    jobs.redis.delete(answer_list_key(letter.id))  # nor its notice, if it was an interactive request
    app.send_task(
        letter.task, args=letter.args, kwargs=letter.kwargs, queue=letter.queue, priority=priority, task_id=letter.id
    )
    return letter
