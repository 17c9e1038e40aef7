"""The Python client: submit classify, embed, entities, bulk and training jobs by task name, follow them, fetch
results, retry, cancel.

It sends tasks by their stable names and never imports worker code, onnxruntime or torch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict, Unpack

import numpy as np
import redis
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

from lepton_runtime.constants import (
    CLASSIFY_TASK,
    INFERENCE_QUEUE,
    MAX_CHUNK_SIZE,
    MAX_DEADLINE_S,
    MAX_TRAINING_DATA_BYTES,
)
from lepton_runtime.errors import (
    BrokerUnavailableError,
    ExpiredError,
    ForbiddenError,
    InputIssue,
    InvalidInputError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    LeptonError,
    ModelStoreUnavailableError,
)
from lepton_runtime.jobs import (
    DEFAULT_TRAINING,
    RESULT_STATES,
    JobStatus,
    JobStore,
    PromotePolicy,
    TrainedTask,
    TrainingRuns,
    TrainingStatus,
    TrainRequest,
    broker_errors,
    celery_config,
    connect_with,
)
from lepton_runtime.jobs.bulk_data import BulkData
from lepton_runtime.jobs.data_store import DataStore
from lepton_runtime.jobs.dead_letters import DeadLetterStore
from lepton_runtime.jobs.fleet_status import ProcessStatus, fleet
from lepton_runtime.jobs.keys import answer_list_key, tenant_scoped
from lepton_runtime.jobs.lanes import InteractiveLane, LaneRequest, check_tenant
from lepton_runtime.jobs.owners import owner_of, record_request_owner
from lepton_runtime.jobs.protocol import INTERACTIVE_PRIORITY, RESULT_TTL_S
from lepton_runtime.jobs.queues import stamp_enqueue_times
from lepton_runtime.jobs.sending import job_of_task, send_chunks, send_training
from lepton_runtime.prediction import ItemError, Provenance
from lepton_runtime.registry import ModelReference, ModelVersion, open_registry, validate_model_name
from lepton_runtime.registry.notices import ALIAS_RECHECK_S, SWITCH_AFTER_S, is_warm, registry_epoch
from lepton_runtime.registry.owners import LEGACY_OWNER, check_publisher, may_use
from lepton_runtime.settings import LeptonSettings, load_settings
from lepton_runtime.task_names import EMBEDDING, TEXT_CLASSIFICATION, TOKEN_CLASSIFICATION, require_task
from lepton_runtime.tasks import SPECS, TaskSpec, task_spec
from producer.bulk_sources import output_location, plan_input, remove_written
from producer.outputs import check_output_file, write_output

logger = logging.getLogger(__name__)

# Characters of a text shown in task arguments (Flower, logs); the task itself gets all of them.
TEXT_REPR_CHARS = 60
# How long `ClassifyJob.wait` waits by default.
DEFAULT_WAIT_S = 30.0
# A wait on an interactive answer looks at the stored answer at least this often (seconds).
ANSWER_POLL_S = 1.0
# A request with a deadline is waited for until this long after it: the lane answers `expired` at the deadline.
DEADLINE_GRACE_S = 5.0
# A wait whose Redis does not answer (restarting, failing over) asks again after this long (seconds).
ANSWER_RETRY_S = 0.2
LaneChoice = Literal["auto", "interactive", "bulk"]


class TextOptions(TypedDict, total=False):
    """The options of every few-text call (``LeptonClient.infer``'s, which says what each does)."""

    idempotency_key: str | None
    deadline_s: float | None
    lane: LaneChoice
    tenant: str | None


# States of a Celery task, as job states.
_TASK_STATES = {
    "PENDING": "queued",
    "RECEIVED": "queued",
    "STARTED": "running",
    "RETRY": "queued",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "REVOKED": "cancelled",
}


@dataclass
class TextsJob:
    """A few texts sent for one task: ``wait`` returns one result per text, in order (a Prediction of a classifier
    or of zero-shot, an Embedding, Entities, as the task's spec decodes it; an ItemError for a bad text).

    One of the interactive lane (``answers`` set: the wait blocks on its answer list) or a
    ``lepton.classify`` task of the bulk lane (the wait is Celery's).
    """

    id: str
    result: AsyncResult
    spec: TaskSpec = field(default_factory=lambda: task_spec(TEXT_CLASSIFICATION))
    created: bool = True
    answers: redis.Redis | None = None
    deadline: float | None = None  # epoch seconds: an interactive request with a deadline is waited for until then

    @property
    def state(self) -> str:
        return _TASK_STATES.get(self.result.state, "queued")

    def wait(self, timeout_s: float | None = DEFAULT_WAIT_S) -> list[Any]:
        """One result per text, in order (the task's result, or an ItemError for a bad text)."""
        status, answer = self._wait_interactive(timeout_s) if self.answers is not None else self._wait_task(timeout_s)
        if status != "SUCCESS":
            if isinstance(answer, LeptonError):
                raise answer
            raise JobFailedError(f"job {self.id} failed: {type(answer).__name__}: {answer}")
        provenance = Provenance.from_dict(answer["model"])
        return [
            ItemError.from_dict(item) if "error" in item else self.spec.result_from_dict(item, provenance)
            for item in answer["predictions"]
        ]

    def vectors(self, timeout_s: float | None = DEFAULT_WAIT_S) -> np.ndarray:
        """An embedding request's vectors as a float32 array, one row per text in order; an InvalidInputError
        naming every bad text if any was refused."""
        results = self.wait(timeout_s)
        errors = [result for result in results if isinstance(result, ItemError)]
        if errors:
            raise InvalidInputError(
                f"{len(errors)} of {len(results)} texts were refused: "
                + "; ".join(error.message for error in errors[:10]),
                issues=[InputIssue(f"texts[{error.index}]", error.message) for error in errors],
            )
        return np.asarray([result.vector for result in results], dtype=np.float32).reshape(len(results), -1)

    def _wait_task(self, timeout_s: float | None) -> tuple[str, Any]:
        try:
            answer = self.result.get(timeout=timeout_s, propagate=False)
        except CeleryTimeoutError:
            raise self._timeout(timeout_s) from None
        return ("FAILURE", self.result.result) if self.result.failed() else ("SUCCESS", answer)

    def _wait_interactive(self, timeout_s: float | None) -> tuple[str, Any]:
        """Block on the answer list; between blocks look at the stored answer (another waiter may have taken
        the notice, e.g. a second wait on the same idempotency key)."""
        assert self.answers is not None
        backend = self.result.backend
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if self.deadline is not None:  # past its own deadline (and the lane's grace) no answer will come
            expires = time.monotonic() + self.deadline - time.time() + DEADLINE_GRACE_S
            if deadline is None or expires < deadline:
                deadline, timeout_s = expires, None
        while True:
            remaining = ANSWER_POLL_S if deadline is None else min(ANSWER_POLL_S, deadline - time.monotonic())
            try:
                popped = self.answers.blpop([answer_list_key(self.id)], timeout=max(remaining, 0.001))
                raw = popped[1] if popped else self.answers.get(backend.get_key_for_task(self.id))
            except (redis.ConnectionError, redis.TimeoutError) as error:
                # Redis restarting or failing over: the wait goes on (the next command finds the primary) until
                # its own deadline, when it says why it ended
                if deadline is not None and time.monotonic() >= deadline:
                    raise BrokerUnavailableError(
                        f"job {self.id}: Redis did not answer before the wait ended ({error}); the request may "
                        f"still be answered: `lepton jobs status {self.id}`"
                    ) from None
                time.sleep(min(ANSWER_RETRY_S, max(remaining, 0.001)))  # back off from a Redis that refuses
                continue
            if raw is not None:
                meta = backend.meta_from_decoded(backend.decode(raw))
                if meta.get("status") in {"SUCCESS", "FAILURE"}:
                    return meta["status"], meta["result"]
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timeout(timeout_s) if timeout_s is not None else self._expired()

    def _expired(self) -> ExpiredError:
        return ExpiredError(
            f"job {self.id}: no answer {DEADLINE_GRACE_S:g} s after its deadline: it was shed, or lost with its "
            "answer in a Redis failover; send it again (with a later deadline if the fleet is busy)"
        )

    def _timeout(self, timeout_s: float | None) -> JobTimeoutError:
        return JobTimeoutError(
            f"job {self.id} not finished after {timeout_s} s (state {self.state}); is a worker "
            "running for the lepton.inference queue? (`lepton up` or `lepton worker`)"
        )


# The names of the job a few-text call returns, from before there was one for every task.
ClassifyJob = TextsJob
EmbedJob = TextsJob
EntitiesJob = TextsJob


@dataclass
class BulkJob:
    """A submitted bulk job; ``wait`` follows it and writes ``output`` (JSON lines, input order) when done."""

    id: str
    client: LeptonClient
    output: Path | None = None
    created: bool = True
    # replicas that held the submission when it returned (LEPTON_REDIS_WAIT_REPLICAS); None when not asked, or when
    # the idempotency key named a job submitted before
    replicas: int | None = None

    def status(self) -> JobStatus:
        return self.client.status(self.id)

    def wait(
        self, timeout_s: float | None = None, *, on_progress: Callable[[JobStatus], None] | None = None
    ) -> JobStatus:
        status = self.client.wait(self.id, timeout_s, on_progress=on_progress)
        if self.output is not None and status.state in RESULT_STATES:
            self.client.write_results(self.id, self.output)
        return status

    def results(self) -> Iterator[dict[str, Any]]:
        return self.client.results(self.id)


@dataclass
class TrainingJob:
    """A submitted training run; ``wait`` follows it to succeeded (a new version), failed or cancelled."""

    id: str
    client: LeptonClient
    created: bool = True
    # replicas that held the submission when it returned (LEPTON_REDIS_WAIT_REPLICAS); None when not asked, or when
    # the idempotency key named a run submitted before
    replicas: int | None = None

    def status(self) -> TrainingStatus:
        return self.client.training_status(self.id)

    def wait(
        self, timeout_s: float | None = None, *, on_progress: Callable[[TrainingStatus], None] | None = None
    ) -> TrainingStatus:
        with broker_errors(self.client._url):
            return self.client.training.wait(self.id, timeout_s, on_progress=on_progress)


def texts_repr(texts: Sequence[Any], model: str) -> str:
    """What Flower and the logs show of a classify task: the count, the first text cut short, the model."""
    first = repr(texts[0])[: TEXT_REPR_CHARS - 1] + "…" if texts else "-"
    return f"[{len(texts)} text{'s' if len(texts) != 1 else ''}: {first}, {model!r}]"


class LeptonClient:
    """Submit and follow jobs. Settings come from ``LEPTON_*`` (``LEPTON_REDIS_URL``, ``LEPTON_MODEL_DIR``)
    unless given; model references are resolved once, here, to the exact version every result records."""

    def __init__(self, settings: LeptonSettings | None = None) -> None:
        self.settings = settings or load_settings()
        self._url = self.settings.broker_url
        self.redis = connect_with(self.settings)
        self.jobs = JobStore(self.redis, ttl_s=self.settings.job_ttl_s)
        self.data = DataStore(self.settings.data_store, endpoint_url=self.settings.s3_endpoint_url)
        self.bulk_data = BulkData(self.data)
        self.training = TrainingRuns(self.redis, ttl_s=self.settings.job_ttl_s)
        self.lane = InteractiveLane(self.redis)
        self._exact_versions: dict[str, ModelVersion] = {}
        self._alias_versions: dict[str, HeldAlias] = {}  # from an object store (_follow_alias)
        self.registry = open_registry(self.settings)
        self.celery = Celery("lepton-producer", set_as_current=False)
        self.celery.conf.update(celery_config(self.settings))
        stamp_enqueue_times()

    def close(self) -> None:
        self.redis.close()
        self.celery.close()

    def __enter__(self) -> LeptonClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- a few texts -------------------------------------------------------------------------------
    def classify(self, texts: Sequence[str], *, model: str, **options: Unpack[TextOptions]) -> TextsJob:
        """Classify a few texts (up to LEPTON_MAX_ITEMS) with a classifier; returns at once, ``wait()`` for one
        Prediction per text. See ``infer`` for the options (lanes, deadlines, tenants, idempotency keys)."""
        return self.infer(TEXT_CLASSIFICATION, texts, model=model, **options)

    def embed(self, texts: Sequence[str], *, model: str, **options: Unpack[TextOptions]) -> TextsJob:
        """Sentence embeddings of a few texts with an embedding model (``lepton export --task embedding``); returns
        at once: ``wait()`` gives one Embedding per text, ``vectors()`` a float32 array. Options as ``infer``'s; use
        ``submit_bulk`` for a corpus."""
        return self.infer(EMBEDDING, texts, model=model, **options)

    def entities(self, texts: Sequence[str], *, model: str, **options: Unpack[TextOptions]) -> TextsJob:
        """Entities of a few texts with an entity model (``--task token-classification``); returns at once:
        ``wait()`` gives per text its Entities (start, end, label, score, text: character offsets into that text).
        Options as ``infer``'s; use ``submit_bulk`` for a corpus."""
        return self.infer(TOKEN_CLASSIFICATION, texts, model=model, **options)

    def __getattr__(self, name: str) -> Callable[..., TextsJob]:
        """Every other task by its method name (``client.zero_shot(texts, model=..., labels=[...])``): its
        parameters as keywords beside ``infer``'s options."""
        spec = next((spec for spec in SPECS.values() if spec.client_method == name), None)
        if spec is None or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        names = {option.name for option in spec.options}

        def call(texts: Sequence[str], *, model: str, **keywords: Any) -> TextsJob:
            params = {key: keywords.pop(key) for key in list(keywords) if key in names}
            return self.infer(spec.name, texts, model=model, params=params, **keywords)

        call.__doc__ = f"{spec.summary} Parameters: {', '.join(sorted(names)) or 'none'}; options as ``infer``'s."
        return call

    def infer(
        self,
        task: str,
        texts: Sequence[str],
        *,
        model: str,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        deadline_s: float | None = None,
        lane: LaneChoice = "auto",
        tenant: str | None = None,
    ) -> TextsJob:
        """A few texts (up to LEPTON_MAX_ITEMS) for ``task`` (a name of ``lepton_runtime.tasks.SPECS``) with its
        ``params``; returns at once, ``wait()`` for one result per text. A model that does not do what the task
        needs is refused (``wrong_task``).

        Up to LEPTON_INTERACTIVE_MAX_TEXTS texts take the interactive lane (``lane="auto"``): batched with other
        callers' requests and run between the batches of bulk work. More take the bulk lane, as a
        ``lepton.classify`` task. ``deadline_s``: not run (answered ``expired``) unless a worker starts it within
        this many seconds. ``tenant``: whose quota and share it counts against (default LEPTON_TENANT).
        """
        spec = task_spec(task)
        checked = spec.check_params(params)
        if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
            raise InvalidInputError(f"texts: expected a list of strings, got {type(texts).__name__}")
        if len(texts) > self.settings.max_items:
            raise InvalidInputError(
                f"texts: {len(texts)} items is over the limit of {self.settings.max_items} for one call "
                "call; use submit_bulk for more"
            )
        if lane not in ("auto", "interactive", "bulk"):
            raise InvalidInputError(f"lane: {lane!r} is not auto, interactive or bulk")
        if lane == "auto":
            lane = "interactive" if len(texts) <= self.settings.interactive_max_texts else "bulk"
        if deadline_s is not None:
            if not 0 < deadline_s <= MAX_DEADLINE_S:
                raise InvalidInputError(f"deadline_s: {deadline_s} is outside (0, {MAX_DEADLINE_S:g}] seconds")
            if lane == "bulk":
                raise InvalidInputError(
                    f"deadline_s: deadlines are kept by the interactive lane, which takes up to "
                    f"{self.settings.interactive_max_texts} texts (LEPTON_INTERACTIVE_MAX_TEXTS); send fewer texts"
                )
        tenant = check_tenant(tenant or self.settings.tenant)
        version = self.resolve(model)
        require_task(version.reference, version.manifest.task, spec.model_task)
        self.check_use(version, tenant)
        # a task other than the model's own travels with the request (its parameters checked above)
        asked_task, asked_params = (spec.name, checked) if spec.name != version.manifest.task else (None, {})
        task_id = uuid.uuid4().hex
        idempotency_key = tenant_scoped(tenant, idempotency_key or None)
        with broker_errors(self._url):
            if idempotency_key and (first := self.jobs.claim_key(idempotency_key, task_id)) != task_id:
                return TextsJob(first, AsyncResult(first, app=self.celery), spec, created=False)
            if lane == "interactive":
                now = time.time()
                request = LaneRequest(
                    id=task_id, texts=list(texts), model=version.reference, sha256=version.manifest.content_sha256,
                    tenant=tenant, enqueued_at=now, deadline=now + deadline_s if deadline_s is not None else None,
                    task=asked_task, params=asked_params,
                )  # fmt: skip
                try:
                    self.lane.admit(request, quota=self.settings.quota_of(tenant), owner_ttl_s=RESULT_TTL_S)
                except LeptonError:
                    if idempotency_key:
                        self.jobs.release_key(idempotency_key, task_id)
                    raise
                result = AsyncResult(task_id, app=self.celery)
                return TextsJob(task_id, result, spec, answers=self.redis, deadline=request.deadline)
            record_request_owner(self.redis, task_id, tenant, RESULT_TTL_S)
            result = self.celery.send_task(
                CLASSIFY_TASK,
                args=[list(texts), version.reference, version.manifest.content_sha256],
                kwargs={"task": asked_task, "params": asked_params} if asked_task else {},
                task_id=task_id,
                queue=INFERENCE_QUEUE,
                priority=INTERACTIVE_PRIORITY,
                argsrepr=texts_repr(texts, version.reference),
            )
        return TextsJob(result.id, result, spec)

    # -- bulk --------------------------------------------------------------------------------------
    def submit_bulk(
        self,
        source: str | os.PathLike[str] | Sequence[str],
        *,
        model: str,
        output: str | os.PathLike[str] | None = None,
        out: str | None = None,
        chunk_size: int | None = None,
        text_field: str = "text",
        id_field: str = "id",
        idempotency_key: str | None = None,
        tenant: str | None = None,
        confined: bool = False,
        source_label: str | None = None,
        ids: Sequence[str] | None = None,
        task: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> BulkJob:
        """Queue a bulk job owned by ``tenant`` (default LEPTON_TENANT) over a dataset (``s3://bucket/corpus/``, a
        folder, a glob, Parquet, JSON lines or CSV, also .gz/.zst: planned from metadata, read by the workers) or
        inline texts (a list, or a local .jsonl/.csv/.txt file: written to the data store first).

        ``out``: the folder in the data store for the output parts and manifest (default
        ``<store>/tenants/<tenant>/outputs/<job>/``); ``output``: a local file ``BulkJob.wait`` writes the rows to.
        ``confined`` (the HTTP API): both must lie inside the tenant's part of the data store. ``source_label``:
        what the job's ``source`` calls a local file (the API gives an upload's own file name).
        ``ids``: with a list of texts, one id each (the output's ``id``; default: the positions 0, 1, ...).
        ``task``, ``params``: what every text asks of the model (default: its own task), the parameters given once
        for the whole job (``task="zero-shot-classification", params={"labels": [...]}`` on an embedding model).
        """
        chunk_size = chunk_size or self.settings.chunk_size
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInputError(f"chunk_size: {chunk_size} is outside 1..{MAX_CHUNK_SIZE}")
        tenant = check_tenant(tenant or self.settings.tenant)
        version = self.resolve(model)
        spec = task_spec(task or version.manifest.task)
        require_task(version.reference, version.manifest.task, spec.model_task)
        checked = spec.check_params(params)
        if output is not None:
            check_output_file(Path(output), spec)
        self.check_use(version, tenant)
        key = tenant_scoped(tenant, idempotency_key or None)
        with broker_errors(self._url):
            if key and (existing := self.jobs.job_for_key(key)):
                return BulkJob(existing, self, Path(output) if output is not None else None, False, None)
            job_id = self.jobs.new_job_id()
            target = output_location(self.data, out, job_id=job_id, tenant=tenant, confined=confined)
            planned = None
            try:
                planned = plan_input(
                    self.data, source, job_id=job_id, tenant=tenant, chunk_size=chunk_size, text_field=text_field,
                    id_field=id_field, confined=confined, label=source_label, ids=ids,
                )  # fmt: skip
                job_id, created = self.jobs.create(
                    planned.job_input, planned.splits, model=model, model_version=version.reference,
                    model_sha256=version.manifest.content_sha256, source=planned.label, output=target,
                    chunk_size=chunk_size, tenant=tenant, weight=self.settings.tenant_weights.get(tenant, 1.0),
                    window_chunks=self.settings.bulk_window_chunks, total_texts=planned.total_texts,
                    idempotency_key_value=key, job_id=job_id,
                    task=spec.name if spec.name != version.manifest.task else None, params=checked,
                )  # fmt: skip
            except BaseException:
                remove_written(self.data, planned)
                raise
            replicas = None
            if created:
                try:
                    send_chunks(self.celery, job_id, self.jobs.dispatch(job_id))
                except redis.exceptions.OutOfMemoryError:
                    self.jobs.discard(job_id)  # Redis filled up part-way: no job is handed out; sent chunks fail alone
                    remove_written(self.data, planned)
                    raise
                replicas = self.jobs.mark_enqueued(job_id, **self._wait_options)
                self._replicated(f"bulk job {job_id}", replicas)
            else:
                remove_written(self.data, planned)
        return BulkJob(job_id, self, Path(output) if output is not None else None, created, replicas)

    def status(self, job_id: str) -> JobStatus:
        with broker_errors(self._url):
            return self.jobs.status(job_id)

    def describe(self, job_id: str) -> JobStatus | TrainingStatus:
        """The status of any job: a bulk job or a training run."""
        with broker_errors(self._url):
            try:
                return self.jobs.status(job_id)
            except JobNotFoundError:
                if self.training.exists(job_id):
                    return self.training.status(job_id)
                raise JobNotFoundError(
                    f"no job {job_id!r} (bulk or training; never submitted, or expired); list jobs with "
                    "`lepton jobs list`"
                ) from None

    # -- training ----------------------------------------------------------------------------------
    def train(
        self,
        data: str | os.PathLike[str],
        *,
        name: str,
        base: str | os.PathLike[str] | None = None,
        validation: str | os.PathLike[str] | None = None,
        text_field: str = "text",
        label_field: str = "label",
        epochs: int = DEFAULT_TRAINING.epochs,
        learning_rate: float = DEFAULT_TRAINING.learning_rate,
        batch_size: int = DEFAULT_TRAINING.batch_size,
        max_length: int = DEFAULT_TRAINING.max_length,
        promote: PromotePolicy = DEFAULT_TRAINING.promote,
        idempotency_key: str | None = None,
        task: TrainedTask = "text-classification",
        tenant: str | None = None,
    ) -> TrainingJob:
        """Queue ``lepton.train``: fine-tune ``base`` (default MiniLM-L6) on a labelled file and publish ``name``.

        The file is read and checked here (bad rows fail at once, naming the line) and its rows travel
        with the run in Redis, so a worker on another machine needs only the base checkpoint. With
        ``task="token-classification"`` the files are CoNLL-style JSONL (``tokens`` + BIO ``tags``, or ``text`` +
        character ``spans``) and ``validation`` is required (it gates int8 and decides promotion). The run and
        the versions it publishes belong to ``tenant`` (default LEPTON_TENANT), which must own ``name`` or claim it
        new (ForbiddenError at once otherwise).
        """
        validate_model_name(name)
        tenant = check_tenant(tenant or self.settings.tenant)
        check_publisher(name, self.registry.owner(name), tenant)
        request = TrainRequest(
            name=name,
            base=_worker_path(base),
            source=str(data),
            validation_source=str(validation) if validation is not None else None,
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_length=max_length,
            promote=promote,
            task=task,
        )
        rows, validation_rows = task_spec(task).training_rows(
            data, validation, text_field=text_field, label_field=label_field
        )
        size_bytes = sum(len(json.dumps(row, ensure_ascii=False)) for row in [*rows, *validation_rows])
        if size_bytes > MAX_TRAINING_DATA_BYTES:
            raise InvalidInputError(
                f"{data}: {size_bytes:,} bytes of text is over the limit of {MAX_TRAINING_DATA_BYTES:,} for one "
                "training run; sample the file, or train where it is (`lepton train` without --submit)",
                issues=[InputIssue("data", "too large")],
            )
        with broker_errors(self._url):
            run_id, created = self.training.create(
                request, rows, validation_rows, tenant=tenant,
                idempotency_key_value=tenant_scoped(tenant, idempotency_key or None),
            )  # fmt: skip
            replicas = None
            if created:
                argsrepr = f"[{name!r}: {len(rows)} rows from {Path(data).name}, {epochs} epochs]"
                send_training(self.celery, run_id, argsrepr)
                replicas = self.training.mark_sent(run_id, **self._wait_options)
                self._replicated(f"training run {run_id}", replicas)
        return TrainingJob(run_id, self, created, replicas)

    def training_status(self, run_id: str) -> TrainingStatus:
        with broker_errors(self._url):
            return self.training.status(run_id)

    def wait(
        self, job_id: str, timeout_s: float | None = None, *, on_progress: Callable[[JobStatus], None] | None = None
    ) -> JobStatus:
        """Block until the job succeeds, fails or is cancelled (``JobTimeoutError`` after ``timeout_s``)."""
        with broker_errors(self._url):
            return self.jobs.wait(job_id, timeout_s, on_progress=on_progress)

    def results(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The output rows in input order: ``{"id", "label", "score", "model"}`` (an embedding model:
        ``{"id", "vector", "encoding", "model"}``, the vector as base64 float32) or ``{"id", "error"}``."""
        with broker_errors(self._url):
            for line in self.bulk_data.rows(self.jobs, job_id):
                yield json.loads(line)

    def write_results(self, job_id: str, output: str | os.PathLike[str]) -> int:
        """Write the output to ``output`` in the format its extension names: JSON lines, ``.parquet`` (the task's
        columns), or for an embedding model's vectors ``.npy`` (ids beside it) (producer/outputs.py). The job's parts
        stream from the data store to the file; a partial file never has its name."""
        with broker_errors(self._url):
            total = self.jobs.status(job_id).total_texts
            return write_output(self.bulk_data.tables(self.jobs, job_id), Path(output), total)

    def result_lines(self, job_id: str) -> Iterator[str]:
        """The output rows of a finished job as JSON lines, in input order (what ``results`` parses)."""
        with broker_errors(self._url):
            yield from self.bulk_data.rows(self.jobs, job_id)

    @property
    def _wait_options(self) -> dict[str, int]:
        settings = self.settings
        return {"wait_replicas": settings.redis_wait_replicas, "wait_timeout_ms": settings.redis_wait_timeout_ms}

    def _replicated(self, what: str, replicas: int | None) -> None:
        """Warn when fewer replicas than LEPTON_REDIS_WAIT_REPLICAS held a submission within the timeout (it is
        queued on the primary all the same; a failover before the replicas catch up could lose it)."""
        wanted = self.settings.redis_wait_replicas
        if replicas is not None and replicas < wanted:
            logger.warning(
                "%s is held by %d of %d replicas after %d ms (LEPTON_REDIS_WAIT_REPLICAS); it is queued, but a "
                "failover before the replicas catch up could lose it: check the replicas' link to the primary",
                what,
                replicas,
                wanted,
                self.settings.redis_wait_timeout_ms,
            )

    def retry(self, job_id: str) -> list[int]:
        """Run the failed chunks again (only those), and send the chunks a producer that died while
        submitting never sent (and what the job's window lets go); returns their indices. ``job_id`` may also be
        the id of one of the job's chunk tasks, as Flower shows it."""
        job_id = job_of_task(job_id)
        with broker_errors(self._url):
            requeued, unsent = self.jobs.requeue_failed(job_id), self.jobs.unsent_chunks(job_id)
            chunks = sorted({*requeued, *unsent, *self.jobs.dispatch(job_id)})
            send_chunks(self.celery, job_id, chunks)
            self.jobs.mark_enqueued(job_id)
            # the retried chunks' dead letters are resolved by the retry (one that fails again gets a new one)
            DeadLetterStore(self.redis, ttl_s=self.settings.job_ttl_s).discard_chunks(job_id, requeued)
        return chunks

    def cancel(self, job_id: str) -> JobStatus | TrainingStatus:
        """Cancel for good, even across worker restarts: a bulk job starts no other chunk; a training run
        that has not started never will, and a running one stops at its next step and publishes nothing."""
        with broker_errors(self._url):
            if self.training.exists(job_id):
                status = self.training.cancel(job_id)
                self.celery.control.revoke(job_id)  # a worker holding the message skips it at once
                return status
            return self.jobs.cancel(job_id)

    def fleet(self) -> list[ProcessStatus]:
        """The live worker processes and what each holds (lepton_runtime/jobs/fleet_status.py)."""
        with broker_errors(self._url):
            return fleet(self.redis)

    def list_jobs(self, limit: int = 20, *, tenant: str | None = None) -> list[JobStatus]:
        """The most recent bulk jobs (of ``tenant``, or of every tenant), newest first."""
        with broker_errors(self._url):
            return self.jobs.list_jobs(limit, tenant=tenant)

    def list_runs(self, limit: int = 20, *, tenant: str | None = None) -> list[TrainingStatus]:
        """The most recent training runs (of ``tenant``, or of every tenant), newest first."""
        with broker_errors(self._url):
            return self.training.list_runs(limit, tenant=tenant)

    def owner(self, work_id: str) -> str | None:
        """The tenant that submitted a bulk job, training run or one-text request (None: no such work)."""
        with broker_errors(self._url):
            return owner_of(self.redis, work_id)

    def check_use(self, version: ModelVersion, tenant: str) -> None:
        """Raise ForbiddenError unless ``tenant`` may run ``version`` (registry/owners.py: its own, shared, or the
        operator)."""
        owner = self.registry.owner(version.name) or LEGACY_OWNER
        if not may_use(owner, tenant, self.settings.operator_tenant):
            raise ForbiddenError(
                f"model {version.name!r} belongs to tenant {owner.tenant!r} and is not shared: a tenant runs its own"
                f" models and shared ones; ask its owner to share it (`lepton models share {version.name}`)"
            )

    def resolve(self, model: str) -> ModelVersion:
        """The exact version a reference names now (``name`` -> production, else the latest). An exact
        ``name@N`` never changes: it is read from the registry once per client (a request path of its own). From
        an object store, an alias is followed as ``_follow_alias`` says."""
        cached = self._exact_versions.get(model)
        if cached is not None:
            return cached
        if self.registry.remote and ModelReference.parse(model).version is None:
            return self._follow_alias(model)
        version = self.registry.resolve(model)
        if model == version.reference:
            self._exact_versions[model] = version
        return version

    def _follow_alias(self, model: str) -> ModelVersion:
        """The version kept for an alias while the registry's change counter in Redis stays put (ALIAS_RECHECK_S at
        most: a request does not wait for the store). When the alias moved, the old version is kept until a worker
        says the new one is warm, SWITCH_AFTER_S at most (registry/notices.py): no request waits for a load."""
        with broker_errors(self._url):
            epoch = registry_epoch(self.redis)
        now = time.monotonic()
        held = self._alias_versions.get(model)
        if held is not None and held.epoch == epoch and now - held.checked_at < ALIAS_RECHECK_S and not held.next:
            return held.version
        version = held.next if held is not None and held.next and held.epoch == epoch else None
        try:
            version = version or self.registry.resolve(model)
        except ModelStoreUnavailableError:
            if held is None:
                raise
            return held.version  # the store is down: keep sending what the alias named when it last answered
        if held is None or version.reference == held.version.reference:
            self._alias_versions[model] = HeldAlias(version, epoch, now)
            return version
        noticed_at = held.next_since if held.next and held.next.reference == version.reference else now
        with broker_errors(self._url):
            warm = is_warm(self.redis, version.reference)
        if warm or now - noticed_at >= SWITCH_AFTER_S:
            self._alias_versions[model] = HeldAlias(version, epoch, now)
            return version
        self._alias_versions[model] = HeldAlias(held.version, epoch, now, next=version, next_since=noticed_at)
        return held.version


@dataclass
class HeldAlias:
    """What a producer sends for an alias: ``version``, read at ``checked_at`` under the registry's change counter
    ``epoch``; and the version the alias moved to (``next``, seen at ``next_since``) until a worker has it warm."""

    version: ModelVersion
    epoch: int
    checked_at: float
    next: ModelVersion | None = None
    next_since: float = 0.0


def _worker_path(path: str | os.PathLike[str] | None) -> str | None:
    """A base checkpoint as the worker should see it: absolute when it exists here (same machine)."""
    if path is None:
        return None
    local = Path(path)
    return str(local.resolve()) if local.exists() else str(path)
