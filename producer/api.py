"""The HTTP API (FastAPI): other services, in any language, submit and follow jobs with a bearer token.

Every route answers with a declared model; errors share one shape, ``{"error": {"code", "message",
"issues"}}``, with the stable codes of ``lepton_runtime.errors``. Submissions are refused with 429 and
``Retry-After`` while the queue holds more than ``LEPTON_API_MAX_QUEUE_DEPTH`` waiting messages, and
an ``Idempotency-Key`` header makes a repeated submission return the first job.
"""

from __future__ import annotations

import hmac
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from lepton_runtime import __version__
from lepton_runtime.constants import (
    API_RETRY_AFTER_S,
    INFERENCE_QUEUE,
    MAX_API_WAIT_S,
    PRODUCTION_ALIAS,
    TRAINING_QUEUE,
)
from lepton_runtime.errors import (
    BrokerUnavailableError,
    InputIssue,
    InvalidInputError,
    JobStateError,
    JobTimeoutError,
    LeptonError,
)
from lepton_runtime.exposure import is_loopback
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.queues import queue_depths
from lepton_runtime.jobs.schemas import JobStatus, PromotePolicy, TrainingStatus
from lepton_runtime.jobs.sending import job_of_task
from lepton_runtime.prediction import ItemError, Prediction
from lepton_runtime.settings import LeptonSettings
from producer.client import LeptonClient

# HTTP status of each stable error code; anything else is a 500 (a bug).
STATUS_BY_CODE = {
    "invalid_input": 422,
    "invalid_reference": 422,
    "unknown_model": 404,
    "unknown_job": 404,
    "invalid_job_state": 409,
    "corrupt_model": 500,
    "broker_unavailable": 503,
    "too_large": 413,
    "unsupported_media_type": 415,
    "queue_full": 429,
    "unauthorized": 401,
}
RESULTS_MEDIA_TYPE = "application/x-ndjson"
# Bearer-token scheme (declared in the OpenAPI document); checked against LEPTON_API_TOKENS.
BEARER = HTTPBearer(auto_error=False)
UPLOAD_COPY_CHUNK_BYTES = 1024 * 1024


# -- wire models ------------------------------------------------------------------------------------
class ErrorIssue(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable error code, e.g. invalid_input, unknown_model, queue_full.")
    message: str = Field(description="What went wrong and how to fix it.")
    issues: list[ErrorIssue] = Field(default_factory=list, description="Each bad field and its problem.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ClassifyRequest(BaseModel):
    texts: list[str] = Field(min_length=1, description="Texts to classify (at most LEPTON_MAX_ITEMS).")
    model: str = Field(min_length=1, description="Model reference: name, name@version or name@alias.")
    wait_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_API_WAIT_S,
        description="Seconds to wait for the answer before 202 (default: the server's).",
    )

    model_config = {
        "json_schema_extra": {"examples": [{"texts": ["a gorgeous, moving film"], "model": "sentiment@production"}]}
    }


class ModelProvenance(BaseModel):
    model: str
    version: int | None
    sha256: str
    variant: str
    precision: str
    provider: str


class PredictionOut(BaseModel):
    index: int
    label: str | None = None
    score: float | None = None
    scores: dict[str, float] | None = None
    truncated: bool = False
    error: ErrorBody | None = Field(default=None, description="Set instead of a label when this text was invalid.")


class ClassifyResponse(BaseModel):
    job_id: str
    state: str = Field(description="succeeded, or queued/running when the wait ran out (HTTP 202).")
    predictions: list[PredictionOut] | None = None
    model: ModelProvenance | None = None
    status_url: str


class BulkTextsRequest(BaseModel):
    texts: list[str] = Field(min_length=1, description="Texts of the bulk job, in order.")
    model: str = Field(min_length=1)
    chunk_size: int | None = Field(default=None, ge=1, description="Texts per chunk (default LEPTON_CHUNK_SIZE).")

    model_config = {
        "json_schema_extra": {"examples": [{"texts": ["great film", "dull", "loved it"], "model": "sentiment"}]}
    }


class BulkUploadFields(BaseModel):
    """The form fields beside an uploaded bulk file."""

    model: str = Field(min_length=1)
    text_field: str = "text"
    id_field: str = "id"
    chunk_size: int | None = Field(default=None, ge=1)


BULK_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": BulkTextsRequest.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "model"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "JSONL, CSV or plain lines."},
                    **BulkUploadFields.model_json_schema()["properties"],
                },
            }
        },
    },
}


class SubmittedJob(BaseModel):
    job_id: str
    created: bool = Field(description="False when an Idempotency-Key named an earlier submission.")
    status_url: str


class RetriedChunks(BaseModel):
    job_id: str
    chunks: list[int] = Field(description="The chunks sent again (only failed or never-sent ones).")


class ModelVersionOut(BaseModel):
    version: int
    reference: str
    variants: list[str]
    metrics: dict[str, Any]
    created_at: str | None = None


class ModelOut(BaseModel):
    name: str
    aliases: dict[str, int]
    versions: list[ModelVersionOut]


class ModelsResponse(BaseModel):
    models: list[ModelOut]


class PromoteRequest(BaseModel):
    version: int = Field(ge=1, description="The version to point the alias at.")
    alias: str = Field(default=PRODUCTION_ALIAS, min_length=1)


class PromoteResponse(BaseModel):
    name: str
    alias: str
    version: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    ready: bool
    broker: bool
    workers: dict[str, int] = Field(description="Workers consuming each queue.")
    queue_depth: dict[str, int] = Field(description="Messages waiting in each queue.")
    problems: list[str] = Field(default_factory=list)


# -- errors -----------------------------------------------------------------------------------------
class QueueFullError(LeptonError):
    """Raised when a queue holds more waiting messages than the API accepts; try again later."""

    code = "queue_full"
    transient = True


class TooLargeError(InvalidInputError):
    """Raised when a request is over a size limit (texts or bytes)."""

    code = "too_large"


class UnsupportedMediaError(InvalidInputError):
    """Raised when a body comes in a content type the route does not take."""

    code = "unsupported_media_type"


class UnauthorizedError(LeptonError):
    """Raised when a request has no valid bearer token."""

    code = "unauthorized"


def error_response(error: LeptonError) -> JSONResponse:
    issues = [ErrorIssue(field=i.field, problem=i.problem) for i in getattr(error, "issues", [])]
    body = ErrorResponse(error=ErrorBody(code=error.code, message=str(error), issues=issues))
    headers = {"Retry-After": str(API_RETRY_AFTER_S)} if isinstance(error, QueueFullError) else None
    if isinstance(error, UnauthorizedError):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body.model_dump(), status_code=STATUS_BY_CODE.get(error.code, 500), headers=headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "No or wrong bearer token.",
        404: "Unknown model or job.",
        413: "Too many texts or bytes.",
        422: "A field is invalid; the error names it.",
        429: "The queue is too deep; retry after Retry-After seconds.",
        503: "Redis is unreachable.",
    }.items()
}


# -- the app ----------------------------------------------------------------------------------------
def check_exposure(settings: LeptonSettings, host: str) -> None:
    """Refuse to serve without tokens unless bound to loopback and anonymous access was asked for."""
    if settings.api_tokens:
        return
    if not is_loopback(host):
        raise InvalidInputError(
            f"the API would listen on {host} without authentication: set LEPTON_API_TOKENS (a JSON list of"
            " bearer tokens), or bind it to 127.0.0.1"
        )
    if not settings.api_allow_anonymous:
        raise InvalidInputError(
            "no API tokens are configured: set LEPTON_API_TOKENS, or allow anonymous access on loopback"
            " with `lepton api --allow-anonymous` (LEPTON_API_ALLOW_ANONYMOUS=true)"
        )


def create_app(settings: LeptonSettings, client: LeptonClient | None = None) -> FastAPI:
    """The API over one ``LeptonClient`` (Redis, the registry), with the limits of ``settings``."""
    lepton = client or LeptonClient(settings)
    tokens = [token.get_secret_value().encode() for token in settings.api_tokens]
    app = FastAPI(
        title="Lepton Runtime",
        version=__version__,
        summary="Run Transformer models as queued jobs: classify, bulk jobs, training, models.",
        responses=ERROR_RESPONSES,
    )

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if not tokens:
            return  # check_exposure allowed this: loopback, anonymous access asked for
        given = credentials.credentials.encode() if credentials else b""
        if not any(hmac.compare_digest(given, token) for token in tokens):
            raise UnauthorizedError("a valid bearer token is required: send `Authorization: Bearer <token>`")

    def not_too_deep(queue: str) -> Callable[[], None]:
        def check() -> None:
            with broker_errors(settings.broker_url):
                depth = queue_depths(lepton.redis, (queue,))[queue]
            if depth > settings.api_max_queue_depth:
                raise QueueFullError(
                    f"{queue} holds {depth:,} waiting messages (limit {settings.api_max_queue_depth:,});"
                    f" retry after {API_RETRY_AFTER_S} s or add workers"
                )

        return check

    secured = [Depends(authorised)]
    inference_open = [*secured, Depends(not_too_deep(INFERENCE_QUEUE))]
    training_open = [*secured, Depends(not_too_deep(TRAINING_QUEUE))]

    @app.exception_handler(LeptonError)
    async def lepton_error(_: Request, error: LeptonError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        issues = [issue_of(e) for e in error.errors()]
        message = "; ".join(f"{issue.field}: {issue.problem}" for issue in issues)
        body = ErrorResponse(error=ErrorBody(code="invalid_input", message=message, issues=issues))
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        body = ErrorResponse(error=ErrorBody(code=code, message=str(error.detail)))
        return JSONResponse(body.model_dump(), status_code=error.status_code)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Any]) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.api_max_body_bytes:
            return error_response(
                TooLargeError(
                    f"the request body is {int(length):,} bytes, over the limit of {settings.api_max_body_bytes:,}"
                    " (LEPTON_API_MAX_BODY_BYTES); split the file"
                )
            )
        response: Response = await call_next(request)
        return response

    # -- one-shot classification ------------------------------------------------------------------
    @app.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        dependencies=inference_open,
        status_code=200,
        responses={202: {"model": ClassifyResponse, "description": "Not done within wait_s: poll status_url."}},
    )
    def classify(
        body: ClassifyRequest, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
    ) -> Response:
        """Classify a few texts: answered when done (200), or with the job id after ``wait_s`` (202)."""
        if len(body.texts) > settings.max_items:
            raise TooLargeError(
                f"texts: {len(body.texts)} items is over the limit of {settings.max_items} per classify request;"
                " submit a bulk job (POST /v1/jobs) for more"
            )
        job = lepton.classify(body.texts, model=body.model, idempotency_key=idempotency_key)
        wait_s = settings.api_classify_wait_s if body.wait_s is None else body.wait_s
        return classify_answer(job.id, min(wait_s, settings.api_max_wait_s))

    @app.get(
        "/v1/classify/{job_id}",
        response_model=ClassifyResponse,
        dependencies=secured,
        responses={202: {"model": ClassifyResponse, "description": "Still queued or running."}},
    )
    def classify_result(job_id: str, wait_s: Annotated[float, Query(ge=0, le=MAX_API_WAIT_S)] = 0.0) -> Response:
        """The answer of an earlier classify request (202 while it runs)."""
        return classify_answer(job_id, min(max(wait_s, 0.0), settings.api_max_wait_s))

    def classify_answer(job_id: str, wait_s: float) -> Response:
        from celery.result import AsyncResult

        from producer.client import ClassifyJob

        job = ClassifyJob(job_id, AsyncResult(job_id, app=lepton.celery))
        status_url = f"/v1/classify/{job_id}"
        try:
            answers = job.wait(wait_s)
        except JobTimeoutError:
            pending = ClassifyResponse(job_id=job_id, state=job.state, status_url=status_url)
            return JSONResponse(pending.model_dump(), status_code=202)
        predictions = [prediction_out(i, answer) for i, answer in enumerate(answers)]
        provenance = next((a.model.as_dict() for a in answers if isinstance(a, Prediction)), None)
        done = ClassifyResponse(
            job_id=job_id,
            state="succeeded",
            predictions=predictions,
            model=ModelProvenance(**provenance) if provenance else None,
            status_url=status_url,
        )
        return JSONResponse(done.model_dump())

    # -- bulk jobs ------------------------------------------------------------------------------------
    @app.post(
        "/v1/jobs",
        response_model=SubmittedJob,
        status_code=201,
        dependencies=inference_open,
        openapi_extra={"requestBody": BULK_REQUEST_BODY},
        responses={200: {"model": SubmittedJob, "description": "The job an earlier Idempotency-Key submitted."}},
    )
    async def submit_bulk(
        request: Request, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
    ) -> Response:
        """Submit a bulk job: texts in a JSON body, or a file uploaded as multipart form data (JSONL with a
        text field, CSV with a column, or plain lines, read as ``lepton submit`` reads one)."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            body = validated(BulkTextsRequest, await request.body())
            job = await run_in_threadpool(
                lepton.submit_bulk, body.texts, model=body.model, chunk_size=body.chunk_size,
                idempotency_key=idempotency_key,
            )  # fmt: skip
            return submitted(job.id, job.created)
        if kind == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, StarletteUploadFile):
                raise InvalidInputError(
                    "file: a bulk upload needs a `file` part (JSONL, CSV or plain lines)",
                    issues=[InputIssue("file", "missing")],
                )
            fields = validated(BulkUploadFields, {k: v for k, v in form.items() if isinstance(v, str)})
            with uploaded(upload, settings.api_max_body_bytes) as path:
                job = await run_in_threadpool(
                    lepton.submit_bulk, path, model=fields.model, chunk_size=fields.chunk_size,
                    text_field=fields.text_field, id_field=fields.id_field, idempotency_key=idempotency_key,
                )  # fmt: skip
            return submitted(job.id, job.created)
        raise UnsupportedMediaError(
            f"content-type {kind or '(none)'} is not accepted: send application/json with texts, or"
            " multipart/form-data with a file"
        )

    def submitted(job_id: str, created: bool) -> Response:
        answer = SubmittedJob(job_id=job_id, created=created, status_url=f"/v1/jobs/{job_id}")
        return JSONResponse(answer.model_dump(), status_code=201 if created else 200)

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus | TrainingStatus, dependencies=secured)
    def job_status(job_id: str) -> JobStatus | TrainingStatus:
        """State and progress of a bulk job or a training run."""
        return lepton.describe(job_id)

    @app.get(
        "/v1/jobs/{job_id}/results",
        dependencies=secured,
        response_class=StreamingResponse,
        responses={200: {"content": {RESULTS_MEDIA_TYPE: {}}, "description": "One JSON object per line."}},
    )
    def job_results(job_id: str) -> StreamingResponse:
        """The output rows in input order, streamed as JSON lines (``id``, ``label``, ``score``, ``model``)."""
        status = lepton.status(job_id)
        if status.state not in {"succeeded", "failed", "cancelled"}:
            raise JobStateError(
                f"job {job_id} is {status.state} ({status.done_texts}/{status.total_texts} texts); results are"
                " streamed once it has finished: poll GET /v1/jobs/{id}"
            )
        with broker_errors(settings.broker_url):
            lines = lepton.jobs.results(job_id)
            first = next(lines, None)

        def stream() -> Iterator[bytes]:
            if first is not None:
                yield (first + "\n").encode()
            for line in lines:
                yield (line + "\n").encode()

        return StreamingResponse(stream(), media_type=RESULTS_MEDIA_TYPE)

    @app.post("/v1/jobs/{job_id}/retry", response_model=RetriedChunks, dependencies=inference_open)
    def retry_job(job_id: str) -> RetriedChunks:
        """Run a bulk job's failed chunks again (only those); the id may be a chunk task's, as Flower shows it."""
        job_id = job_of_task(job_id)
        lepton.status(job_id)  # 404 for an unknown job
        return RetriedChunks(job_id=job_id, chunks=lepton.retry(job_id))

    @app.delete("/v1/jobs/{job_id}", response_model=JobStatus | TrainingStatus, dependencies=secured)
    def cancel_job(job_id: str) -> JobStatus | TrainingStatus:
        """Cancel a bulk job or a training run, for good (it survives worker restarts)."""
        return lepton.cancel(job_id)

    # -- training and models ----------------------------------------------------------------------------
    @app.post("/v1/train", response_model=SubmittedJob, status_code=201, dependencies=training_open)
    def train(
        file: Annotated[UploadFile, File(description='Labelled data: JSONL {"text", "label"} or CSV.')],
        name: Annotated[str, Form(min_length=1, description="Model name to publish, e.g. sentiment.")],
        epochs: Annotated[int, Form(ge=1, le=100)] = 3,
        learning_rate: Annotated[float, Form(gt=0, le=1)] = 5e-5,
        batch_size: Annotated[int, Form(ge=1, le=1024)] = 16,
        max_length: Annotated[int, Form(ge=8, le=512)] = 128,
        promote: Annotated[PromotePolicy, Form()] = "auto",
        text_field: Annotated[str, Form()] = "text",
        label_field: Annotated[str, Form()] = "label",
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Response:
        """Queue a fine-tuning run of MiniLM-L6 on an uploaded labelled file; follow it at GET /v1/jobs/{id}."""
        with uploaded(file, settings.api_max_body_bytes) as path:
            run = lepton.train(path, name=name, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                               max_length=max_length, promote=promote, text_field=text_field,
                               label_field=label_field, idempotency_key=idempotency_key)  # fmt: skip
        return submitted(run.id, run.created)

    @app.get("/v1/models", response_model=ModelsResponse, dependencies=secured)
    def models() -> ModelsResponse:
        """Published models: versions (with their metrics and variants) and aliases."""
        registry = lepton.registry
        return ModelsResponse(
            models=[
                ModelOut(
                    name=name,
                    aliases=registry.aliases(name),
                    versions=[
                        ModelVersionOut(
                            version=v.version,
                            reference=v.reference,
                            variants=sorted(v.manifest.variants),
                            metrics={k: m for k, m in v.manifest.metrics.items() if k != "per_class"},
                            created_at=v.manifest.created_at,
                        )
                        for v in registry.versions(name)
                    ],
                )
                for name in registry.list_models()
            ]
        )

    @app.post("/v1/models/{name}/promote", response_model=PromoteResponse, dependencies=secured)
    def promote_model(name: str, body: PromoteRequest) -> PromoteResponse:
        """Point an alias (default production) at a version; workers resolve new jobs to it."""
        version = lepton.registry.promote(f"{name}@{body.version}", body.alias)
        return PromoteResponse(name=name, alias=body.alias, version=version.version)

    # -- operations -----------------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """The API process answers (no dependency is checked)."""
        return Health(version=__version__)

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    def readyz() -> Response:
        """Ready when Redis answers and a worker consumes the inference queue."""
        problems: list[str] = []
        workers = {INFERENCE_QUEUE: 0, TRAINING_QUEUE: 0}
        depth: dict[str, int] = {}
        broker = True
        try:
            with broker_errors(settings.broker_url):
                lepton.redis.ping()
                depth = queue_depths(lepton.redis)
        except BrokerUnavailableError as error:
            broker = False
            problems.append(str(error))
        if broker:
            for queues in (lepton.celery.control.inspect(timeout=1.0).active_queues() or {}).values():
                for queue in queues:
                    if queue.get("name") in workers:
                        workers[queue["name"]] += 1
            if not workers[INFERENCE_QUEUE]:
                problems.append(f"no worker consumes {INFERENCE_QUEUE}: start one with `lepton worker`")
        ready = broker and workers[INFERENCE_QUEUE] > 0
        answer = Readiness(ready=ready, broker=broker, workers=workers, queue_depth=depth, problems=problems)
        return JSONResponse(answer.model_dump(), status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        dependencies=secured,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    )
    def metrics() -> PlainTextResponse:
        """Queue depth per queue, in the Prometheus text format."""
        with broker_errors(settings.broker_url):
            depth = queue_depths(lepton.redis)
        lines = [
            "# HELP lepton_queue_depth Messages waiting in a queue (not yet taken by a worker).",
            "# TYPE lepton_queue_depth gauge",
            *[f'lepton_queue_depth{{queue="{queue}"}} {count}' for queue, count in depth.items()],
        ]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return app


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], data: bytes | dict[str, Any]) -> Model:
    """``data`` as ``model``, or the 422 the API gives for any invalid body, naming each bad field."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


def issue_of(error: Any) -> ErrorIssue:
    """One validation error as the field it concerns and what is wrong with it."""
    if error.get("type") == "json_invalid":  # its location is a character position, not a field
        reason = (error.get("ctx") or {}).get("error", "not JSON")
        return ErrorIssue(
            field="body",
            problem=f"the body is not valid JSON ({reason} at character {error['loc'][-1]}); send a JSON object"
            ' such as {"texts": ["..."], "model": "name"}',
        )
    field = ".".join(str(part) for part in error["loc"] if part != "body") or "body"
    return ErrorIssue(field=field, problem=str(error["msg"]))


def prediction_out(index: int, answer: Prediction | ItemError) -> PredictionOut:
    if isinstance(answer, ItemError):
        return PredictionOut(index=index, error=ErrorBody(code=answer.code, message=answer.message))
    return PredictionOut(
        index=index, label=answer.label, score=answer.score, scores=answer.scores, truncated=answer.truncated
    )


class uploaded:
    """An upload copied to a temporary file (kept with its suffix, which names its format) and removed after;
    more than ``max_bytes`` is refused with 413 even when the client sent no Content-Length."""

    def __init__(self, upload: StarletteUploadFile, max_bytes: int) -> None:
        self.upload = upload
        self.max_bytes = max_bytes
        self.directory = Path(tempfile.mkdtemp(prefix="lepton-upload-"))
        self.name = Path(upload.filename or "upload.txt").name or "upload.txt"
        self.path = self.directory / self.name

    def __enter__(self) -> Path:
        path = self.path
        copied = 0
        with path.open("wb") as handle:
            while block := self.upload.file.read(UPLOAD_COPY_CHUNK_BYTES):
                copied += len(block)
                if copied > self.max_bytes:
                    shutil.rmtree(self.directory, ignore_errors=True)
                    raise TooLargeError(
                        f"file: the upload is over the limit of {self.max_bytes:,} bytes"
                        " (LEPTON_API_MAX_BODY_BYTES); split the file"
                    )
                handle.write(block)
        return path

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        if isinstance(error, LeptonError) and error.args:  # name the upload as the client named it
            error.args = (str(error.args[0]).replace(str(self.path), self.name), *error.args[1:])


__all__ = ["check_exposure", "create_app"]
