"""What the tasks do, as plain functions over the runtime's stores and engines (testable without a broker)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_runtime.constants import TRAIN_HEARTBEATS_PER_TIMEOUT
from lepton_runtime.errors import InferenceError, JobCancelledError, LeptonError
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import JobStatus, JobStore, TrainingProgress, TrainingRuns
from lepton_runtime.jobs.audit import AuditTrail
from lepton_runtime.jobs.bulk_data import BulkData
from lepton_runtime.jobs.output_rows import part_table
from lepton_runtime.jobs.training_runs import RunHeartbeat, StopReason
from lepton_runtime.prediction import ItemError
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.tasks import TaskSpec, task_spec

logger = logging.getLogger(__name__)

# A running training run looks at its cancel flag and its holder at most this often (asked at every step).
CANCEL_CHECK_INTERVAL_S = 0.5

_CHUNK_INDEX = re.compile(r"^texts\[\d+\]")


Turn = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class BatchPolicy:
    """How bulk-lane texts go to the model: each ONNX Runtime batch inside ``turn()``, with at most
    ``max_batch_tokens`` padded tokens (None: the engine's own budget)."""

    turn: Turn = nullcontext
    max_batch_tokens: int | None = None


ALONE = BatchPolicy()


# What a request asks of its model besides its texts: a task (None: the model's own) and that task's parameters.
Ask = tuple[str | None, Mapping[str, Any]]
OWN_TASK: Ask = (None, {})


def run_texts(
    engine: Engine, texts: list[Any], policy: BatchPolicy = ALONE, task: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The results of ``task`` (default: the model's own) for a few texts in input order (bad items become errors in
    place) and one provenance."""
    spec = request_spec(task, engine)
    checked = spec.check_params(params)  # before the model runs: a bad parameter costs nothing
    results = engine.run(texts, errors="return", turn=policy.turn, max_batch_tokens=policy.max_batch_tokens)
    return _answer(engine, finished(spec, engine, results, checked), offset=0)


def run_requests(
    engine: Engine, requests: Sequence[list[Any]], turn: Turn = nullcontext, asks: Sequence[Ask] | None = None
) -> list[Any]:
    """The answers to several requests run as one batch (each ``run_texts``-shaped, in order); ``asks`` says what
    each request asks (its task and parameters; default: the model's own task).

    Bad texts fail only their item, a bad task or parameter only its request. A batch that makes the model fail at
    run time is split in halves, again and again, until the request that causes it is alone: that one is answered
    with an InferenceError, every other request with its results.
    """
    asks = list(asks) if asks is not None else [OWN_TASK] * len(requests)
    texts = [text for request in requests for text in request]
    try:
        results = engine.run(texts, errors="return", turn=turn)
    except LeptonError:
        raise  # not about these texts (the model, the broker): the caller answers every request with it
    except Exception as error:
        if len(requests) == 1:
            cause = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            return [
                InferenceError(
                    f"the model failed at run time on this request's texts ({type(error).__name__}: {cause}); "
                    "the requests batched with it were answered. Check the texts, or report the model"
                )
            ]
        middle = len(requests) // 2
        return run_requests(engine, requests[:middle], turn, asks[:middle]) + run_requests(
            engine, requests[middle:], turn, asks[middle:]
        )
    answers: list[Any] = []
    start = 0
    for request, (task, params) in zip(requests, asks, strict=True):
        own = results[start : start + len(request)]
        try:
            spec = request_spec(task, engine)
            answers.append(_answer(engine, finished(spec, engine, own, spec.check_params(params)), offset=start))
        except LeptonError as error:  # its task or parameters: this request alone
            answers.append(error)
        start += len(request)
    return answers


def request_spec(task: str | None, engine: Engine) -> TaskSpec:
    """The task a request asks of ``engine``'s model (None: the model's own), refused unless the model does it."""
    spec = task_spec(task or engine.task.name)
    engine.require_task(spec.model_task)
    return spec


def finished(spec: TaskSpec, engine: Engine, results: list[Any], checked: Mapping[str, Any]) -> list[Any]:
    """``spec``'s results from the engine's, with the parameters ``check_params`` returned, counted per task asked."""
    answered = spec.finish(engine, results, checked)
    if engine.observer is not None:
        engine.observer.asked(spec.name, len(answered))
    return answered


def _answer(engine: Engine, results: Sequence[Any], *, offset: int) -> dict[str, Any]:
    """One request's answer: its results under ``predictions`` (bad items as errors, indexed within the request)
    and one provenance."""
    answers = []
    for result in results:
        if isinstance(result, ItemError):
            index = result.index - offset
            message = result.message.replace(f"texts[{result.index}]", f"texts[{index}]", 1)
            answers.append(ItemError(index, result.code, message).as_dict())
        else:
            answer = result.as_dict()
            del answer["model"]  # one provenance for the whole answer, below
            answers.append(answer)
    return {"model": engine.provenance.as_dict(), "predictions": answers}


def run_chunk(
    jobs: JobStore,
    data: BulkData,
    engines: EngineCache,
    job_id: str,
    chunk: int,
    send: Callable[[str, list[int]], None],
    policy: BatchPolicy = ALONE,
) -> dict[str, Any]:
    """Run one chunk of a bulk job: read its split from the data store, run the job's task, write its output part
    once, record it, and ``send`` the chunks its job's window lets go; skip chunks done, failed or cancelled. The job's
    last chunk commits the output's manifest."""
    decision = jobs.start_chunk(job_id, chunk)
    if decision != "run":
        return {"job": job_id, "chunk": chunk, "skipped": decision}
    work = jobs.chunk_work(job_id, chunk)
    ids, positions, texts = data.read_chunk(work)
    engine = engines.get(work.model_version, content_sha256=work.model_sha256)
    spec = request_spec(work.task, engine)
    checked = spec.check_params(work.params)  # before the model runs: a bad parameter costs nothing
    results = engine.run(texts, errors="return", turn=policy.turn, max_batch_tokens=policy.max_batch_tokens)
    results = [_in_chunk(result) for result in finished(spec, engine, results, checked)]
    part = data.write_part(work, part_table(spec, ids, positions, results, engine.provenance))
    errors = sum(isinstance(result, ItemError) for result in results)
    outcome = jobs.complete_chunk(job_id, chunk, part, errors)
    send(job_id, outcome.to_send)
    if outcome.final_state == "succeeded":
        commit_output(jobs, data, job_id)
    progress = job_progress(jobs.status(job_id))  # first: Flower and the log line show the result's beginning
    written = outcome.recorded
    return {"job_progress": progress, "chunk": chunk, "texts": len(texts), "errors": errors, "written": written}


def job_progress(status: JobStatus) -> str:
    """How far a chunk's job is, in the words Flower shows as the chunk task's result (Flower knows tasks, not
    jobs): chunks and texts done of the total, failures, and the command that tells more."""
    failed = f", {status.failed_chunks} failed" if status.failed_chunks else ""
    return (
        f"{status.state}: {status.done_chunks}/{status.total_chunks} chunks{failed}, "
        f"{status.done_texts:,}/{status.total_texts:,} texts; lepton jobs status {status.id}"
    )


def commit_output(jobs: JobStore, data: BulkData, job_id: str) -> None:
    """Commit a job's manifest as its last chunk's worker; if the store refuses now, its first reader commits it."""
    try:
        data.commit(jobs, job_id)
    except LeptonError as error:
        logger.warning("job %s succeeded; its manifest is committed by its first reader instead: %s", job_id, error)


def _in_chunk(result: Any) -> Any:
    """A bad item's error as its row says it: the row's id says which text; its place inside the chunk would only
    mislead."""
    if isinstance(result, ItemError):
        return ItemError(result.index, result.code, _CHUNK_INDEX.sub("text", result.message, count=1))
    return result


def run_training(
    runs: TrainingRuns,
    registry: ModelRegistry,
    checkpoint_dir: Path,
    run_id: str,
    on_progress: Callable[[TrainingProgress], None],
    *,
    holder: str,
    heartbeat_timeout_s: float,
    audit: AuditTrail | None = None,
) -> dict[str, Any]:
    """Train and publish the run recorded under ``run_id`` (a classifier, or an entity model) as its ``holder``,
    as the run's tenant (it owns what is published: ``audit`` records the publication);
    beating while it runs; skip runs finished, cancelled or held by a live delivery; honour a cancel; stop,
    finishing nothing, once another delivery took the run over (this one was silent past the timeout)."""
    from export.queued_training import train_queued  # torch and transformers: only in training workers
    from export.training_run import QueuedRun

    decision = runs.start(run_id, holder, heartbeat_timeout_s)
    if decision != "run":
        return {"run": run_id, "skipped": decision}
    request, tenant = runs.request(run_id), runs.tenant(run_id)
    train_rows, validation_rows = runs.rows(run_id)

    def report(progress: TrainingProgress) -> None:
        runs.report(run_id, progress)
        on_progress(progress)

    checked_at = 0.0
    stop_reason: StopReason | None = None

    def should_stop() -> bool:
        nonlocal checked_at, stop_reason
        if stop_reason is None and time.monotonic() - checked_at >= CANCEL_CHECK_INTERVAL_S:
            checked_at, stop_reason = time.monotonic(), runs.stop_reason(run_id, holder)
        return stop_reason is not None

    try:
        beating = RunHeartbeat(runs, run_id, holder, heartbeat_timeout_s / TRAIN_HEARTBEATS_PER_TIMEOUT)
        with beating, registry.publishing_as(tenant):
            run = QueuedRun(registry, checkpoint_dir, run_id, on_progress=report, should_stop=should_stop)
            outcome = train_queued(train_rows, validation_rows, request, run)
    except JobCancelledError as error:
        if stop_reason == "superseded":
            return {"run": run_id, "skipped": "superseded", "message": "another delivery took the run over"}
        runs.mark_cancelled(run_id, holder)
        return {"run": run_id, "state": "cancelled", "message": str(error)}
    if not runs.succeed(run_id, outcome, holder):
        return {"run": run_id, "skipped": "superseded", "message": "another delivery took the run over"}
    if audit is not None:
        detail = f"run {run_id}; {'promoted' if outcome.promoted else 'not promoted'}: {outcome.promotion}"
        audit.record(tenant=tenant, token=f"run:{run_id[:12]}", action="publish", target=outcome.version, detail=detail)
    return {"run": run_id, "state": "succeeded", **outcome.model_dump()}
