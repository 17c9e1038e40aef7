"""The tasks of the contract, ``lepton.classify`` and ``lepton.bulk.chunk``: thin bodies over workers.execution."""

from __future__ import annotations

from typing import Any

from celery import Celery

from lepton_runtime.constants import BULK_CHUNK_TASK, CLASSIFY_TASK
from lepton_runtime.jobs.keys import JobKeys
from workers.execution import classify_texts, run_chunk
from workers.guard import LeptonTask
from workers.runtime import WorkerRuntime, current


class BulkChunkTask(LeptonTask):
    """A chunk that fails for good fails in its job too, so the job finishes (failed) and can be retried."""

    def gave_up(self, runtime: WorkerRuntime, args: tuple[Any, ...], code: str, message: str) -> None:
        job_id, chunk = args[0], int(args[1])
        runtime.jobs.fail_chunk(job_id, chunk, code, message)

    def payload_ref(self, args: tuple[Any, ...]) -> str | None:
        return f"{JobKeys(args[0]).inputs}#{args[1]}"


def register_tasks(app: Celery) -> None:
    """Register exactly the tasks of the contract on ``app``."""

    @app.task(name=CLASSIFY_TASK, base=LeptonTask, bind=True)  # type: ignore[untyped-decorator]
    def classify(self: LeptonTask, texts: list[Any], model: str, content_sha256: str | None = None) -> dict[str, Any]:
        """Classify a few texts with one exact model version (``name@N``, resolved at submit)."""
        return classify_texts(current().engines.get(model, content_sha256=content_sha256), texts)

    @app.task(name=BULK_CHUNK_TASK, base=BulkChunkTask, bind=True)  # type: ignore[untyped-decorator]
    def bulk_chunk(self: BulkChunkTask, job_id: str, chunk: int) -> dict[str, Any]:
        """Classify one chunk of a bulk job; its rows are stored once, whatever the deliveries."""
        runtime = current()
        return run_chunk(runtime.jobs, runtime.engines, job_id, int(chunk))
