"""The tasks of the contract, ``lepton.classify``, ``lepton.bulk.chunk`` and ``lepton.train``: thin bodies over
workers.execution."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from lepton_runtime.constants import BULK_CHUNK_TASK, CLASSIFY_TASK, TRAIN_TASK
from lepton_runtime.jobs.keys import JobKeys, TrainingKeys
from lepton_runtime.jobs.schemas import TrainingProgress
from lepton_runtime.jobs.sending import send_chunks
from workers.execution import run_chunk, run_texts, run_training
from workers.guard import LeptonTask
from workers.runtime import WorkerRuntime, current


def _chunk_of(args: tuple[Any, ...]) -> tuple[str, int] | None:
    """(job id, chunk index) of a chunk task's arguments, or None for a malformed message."""
    if len(args) != 2 or not isinstance(args[0], str) or not str(args[1]).isdigit():
        return None
    return args[0], int(args[1])


class BulkChunkTask(LeptonTask):
    """A chunk that fails for good fails in its job too, so the job finishes (failed) and can be retried; a
    chunk another delivery already stored (or whose job was cancelled) records no late failure."""

    #: room for the job's progress (``job_progress``), which Flower shows as the chunk's result
    resultrepr_maxsize = 240

    def gave_up(self, runtime: WorkerRuntime, args: tuple[Any, ...], code: str, message: str) -> None:
        if chunk := _chunk_of(args):  # else not a chunk of any job: the dead letter is all there is to record
            outcome = runtime.jobs.fail_chunk(*chunk, code, message)
            send_chunks(self.app, chunk[0], outcome.to_send)  # its place in the job's window goes to the next

    def settled(self, runtime: WorkerRuntime, args: tuple[Any, ...]) -> bool:
        chunk = _chunk_of(args)
        return chunk is not None and runtime.jobs.chunk_state(*chunk) in ("done", "cancelled")

    def payload_ref(self, args: tuple[Any, ...]) -> str | None:
        return f"{JobKeys(args[0]).splits}#{args[1]}"


class TrainTask(LeptonTask):
    """A run that fails for good is marked failed in its record (unless another delivery holds it now); progress
    goes to its record, the task state (PROGRESS, for Celery clients) and a ``task-progress`` event (for Flower)."""

    def holder(self) -> str:
        """This run's holder here: the worker and its pool process running it; empty outside a running task (the
        worker's main process reporting a pool process killed at the hard time limit), which may then finish the
        run whoever holds it."""
        return f"{self.request.hostname}:{os.getpid()}:{self.request.id}" if self.request.id else ""

    def gave_up(self, runtime: WorkerRuntime, args: tuple[Any, ...], code: str, message: str) -> None:
        runtime.training_runs.fail(args[0], code, message, self.holder())

    def payload_ref(self, args: tuple[Any, ...]) -> str | None:
        return TrainingKeys(args[0]).data

    def report_progress(self, progress: TrainingProgress) -> None:
        fields = progress.model_dump()
        self.update_state(state="PROGRESS", meta=fields)
        self.send_event("task-progress", **fields)


def register_tasks(app: Celery) -> None:
    """Register exactly the tasks of the contract on ``app``."""

    @app.task(name=CLASSIFY_TASK, base=LeptonTask, bind=True)  # type: ignore[untyped-decorator]
    def classify(
        self: LeptonTask, texts: list[Any], model: str, content_sha256: str | None = None, task: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Run a few texts through one exact model version (``name@N``, resolved at submit): its own task, or the
        ``task`` asked with its ``params`` (the name ``lepton.classify`` is the contract's; it serves every task)."""
        runtime = current()
        engine = runtime.engines.get(model, content_sha256=content_sha256)
        return run_texts(engine, texts, runtime.bulk_policy(), task, params)

    @app.task(name=BULK_CHUNK_TASK, base=BulkChunkTask, bind=True)  # type: ignore[untyped-decorator]
    def bulk_chunk(self: BulkChunkTask, job_id: str, chunk: int) -> dict[str, Any]:
        """Run one chunk of a bulk job; its part is written and recorded once, whatever the deliveries."""
        runtime = current()

        def send(job: str, chunks: list[int]) -> None:
            send_chunks(self.app, job, chunks)

        return run_chunk(
            runtime.jobs, runtime.bulk_data, runtime.engines, job_id, int(chunk), send, runtime.bulk_policy()
        )

    @app.task(name=TRAIN_TASK, base=TrainTask, bind=True)  # type: ignore[untyped-decorator]
    def train(self: TrainTask, run_id: str) -> dict[str, Any]:
        """Fine-tune, export, gate, publish and promote, for the run recorded under ``run_id``."""
        runtime = current()
        return run_training(
            runtime.training_runs, runtime.registry, runtime.settings.checkpoint_dir, run_id, self.report_progress,
            holder=self.holder(), heartbeat_timeout_s=runtime.settings.train_heartbeat_timeout_s, audit=runtime.audit,
        )  # fmt: skip
