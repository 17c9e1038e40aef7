"""``/v1/jobs``: bulk jobs submitted (texts or an uploaded file), followed, streamed, retried and cancelled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from lepton_runtime.errors import InputIssue, InvalidInputError, JobStateError, UnsupportedMediaError
from lepton_runtime.jobs import RESULT_STATES, JobStatus, TrainingStatus
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.sending import job_of_task
from producer.api.dependencies import READ, SUBMIT, SUBMIT_BULK, Client, CurrentCaller, Settings
from producer.api.errors import error_responses, validated
from producer.api.schemas import (
    BULK_REQUEST_BODY,
    MAX_LISTED_JOBS,
    MAX_RESULTS_PAGE_ROWS,
    RESULTS_MEDIA_TYPE,
    BulkDatasetRequest,
    BulkTextsRequest,
    BulkUploadFields,
    JobsResponse,
    ResultsPage,
    RetriedChunks,
    SubmittedJob,
    id_links,
)
from producer.api.tenancy import audited, listed_tenant, require_own_work
from producer.api.uploads import uploaded

# OpenAPI links: where a submitted job's id is used next (clients and the stateful fuzzer follow them).
JOB_LINKS = id_links("job_status", "job_results", "job_rows", "retry_job", "cancel_job")

router = APIRouter(tags=["jobs"], responses=error_responses(401, 403, 404, 422, 503, 500))


def _names_a_dataset(raw: bytes) -> bool:
    """Whether a JSON body names a dataset (``source``) rather than giving texts."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON (or nested past the parser): the texts' schema says what is wrong
        return False
    return isinstance(body, dict) and "source" in body


def submitted(job_id: str, created: bool) -> Response:
    """201 with the new job's id, or 200 with the job an earlier Idempotency-Key submitted."""
    answer = SubmittedJob(job_id=job_id, created=created, status_url=f"/v1/jobs/{job_id}")
    return JSONResponse(answer.model_dump(), status_code=201 if created else 200)


@router.post(
    "/v1/jobs",
    response_model=SubmittedJob,
    status_code=201,
    dependencies=SUBMIT_BULK,
    openapi_extra={"requestBody": BULK_REQUEST_BODY},
    responses={
        201: {"links": JOB_LINKS},
        200: {
            "model": SubmittedJob,
            "description": "The job an earlier Idempotency-Key submitted.",
            "links": JOB_LINKS,
        },
        **error_responses(413, 415, 429),
    },
)
async def submit_bulk(
    request: Request,
    client: Client,
    caller: CurrentCaller,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Submit a bulk job: texts in a JSON body; a dataset in your part of the data store (``source``: a Parquet, JSON
    lines or CSV file, prefix or glob, read by the workers); or a file uploaded as multipart form data (JSONL with a
    text field, CSV with a column, or plain lines, read as ``lepton submit`` reads one). Inline texts are written
    to the data store first; the output parts and manifest go to ``out`` (default: outputs/<job id>/)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        raw = await request.body()
        if _names_a_dataset(raw):
            dataset = validated(BulkDatasetRequest, raw)
            job = await run_in_threadpool(
                client.submit_bulk, dataset.source, model=dataset.model, out=dataset.out, chunk_size=dataset.chunk_size,
                text_field=dataset.text_field, id_field=dataset.id_field, idempotency_key=idempotency_key,
                tenant=caller.tenant, confined=True,
            )  # fmt: skip
            return submitted(job.id, job.created)
        body = validated(BulkTextsRequest, raw)
        job = await run_in_threadpool(
            client.submit_bulk, body.texts, model=body.model, out=body.out, chunk_size=body.chunk_size,
            idempotency_key=idempotency_key, tenant=caller.tenant, confined=True, ids=body.ids,
        )  # fmt: skip
        return submitted(job.id, job.created)
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError(
                "file: a bulk upload needs a `file` part (JSONL, CSV or plain lines)",
                issues=[InputIssue("file", "missing")],
            )
        fields = validated(BulkUploadFields, {k: v for k, v in form.items() if isinstance(v, str)})
        with uploaded(upload) as path:
            job = await run_in_threadpool(
                client.submit_bulk, path, model=fields.model, out=fields.out, chunk_size=fields.chunk_size,
                text_field=fields.text_field, id_field=fields.id_field, idempotency_key=idempotency_key,
                tenant=caller.tenant, confined=True, source_label=f"upload:{upload.filename or 'file'}",
            )  # fmt: skip
        return submitted(job.id, job.created)
    raise UnsupportedMediaError(
        f"content-type {kind or '(none)'} is not accepted: send application/json with texts, or"
        " multipart/form-data with a file"
    )


@router.get("/v1/jobs", response_model=JobsResponse, dependencies=READ)
def list_jobs(
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_JOBS, description="At most this many of each kind.")] = 20,
    tenant: Annotated[str | None, Query(description="The operator's filter: this tenant's work only.")] = None,
) -> JobsResponse:
    """The caller's most recent bulk jobs and training runs, newest first (the operator tenant: every tenant's, or
    ``tenant``'s)."""
    whose = listed_tenant(caller, settings, tenant)
    return JobsResponse(jobs=client.list_jobs(limit, tenant=whose), training_runs=client.list_runs(limit, tenant=whose))


@router.get("/v1/jobs/{job_id}", response_model=JobStatus | TrainingStatus, dependencies=READ)
def job_status(job_id: str, settings: Settings, client: Client, caller: CurrentCaller) -> JobStatus | TrainingStatus:
    """State and progress of a bulk job or a training run."""
    require_own_work(client, settings, caller, job_id)
    return client.describe(job_id)


def finished_job(job_id: str, client: Client) -> None:
    """Raise JobStateError (409) unless the job's output can be read."""
    status = client.status(job_id)
    if status.state not in RESULT_STATES:
        raise JobStateError(
            f"job {job_id} is {status.state} ({status.done_texts}/{status.total_texts} texts); results are"
            " read once it has succeeded, failed or been cancelled: poll GET /v1/jobs/{id}"
        )


@router.get(
    "/v1/jobs/{job_id}/results",
    dependencies=READ,
    response_class=StreamingResponse,
    responses={
        200: {"content": {RESULTS_MEDIA_TYPE: {}}, "description": "One JSON object per line."},
        **error_responses(409),
    },
)
def job_results(job_id: str, settings: Settings, client: Client, caller: CurrentCaller) -> StreamingResponse:
    """The output rows in input order, streamed as JSON lines (``id``, ``label``, ``score``, ``model``); the same
    rows a page at a time as JSON: GET /v1/jobs/{id}/rows."""
    require_own_work(client, settings, caller, job_id)
    finished_job(job_id, client)
    with broker_errors(settings.broker_url):
        lines = client.result_lines(job_id)
        first = next(lines, None)

    def stream() -> Iterator[bytes]:
        if first is not None:
            yield (first + "\n").encode()
        for line in lines:
            yield (line + "\n").encode()

    return StreamingResponse(stream(), media_type=RESULTS_MEDIA_TYPE)


@router.get("/v1/jobs/{job_id}/rows", response_model=ResultsPage, dependencies=READ, responses=error_responses(409))
def job_rows(
    job_id: str,
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    cursor: Annotated[int, Query(ge=0, description="Rows to skip: 0, then each page's next_cursor.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS_PAGE_ROWS, description="Rows in this page.")] = 1000,
) -> ResultsPage:
    """The output rows in input order as JSON, a page at a time: follow ``next_cursor`` until it is null."""
    require_own_work(client, settings, caller, job_id)
    finished_job(job_id, client)
    with broker_errors(settings.broker_url):
        lines = islice(client.result_lines(job_id), cursor, cursor + limit + 1)
        rows = [json.loads(line) for line in lines]
    more = len(rows) > limit
    return ResultsPage(job_id=job_id, rows=rows[:limit], next_cursor=cursor + limit if more else None)


@router.post(
    "/v1/jobs/{job_id}/retry",
    response_model=RetriedChunks,
    dependencies=SUBMIT_BULK,
    responses=error_responses(409, 429),
)
def retry_job(job_id: str, settings: Settings, client: Client, caller: CurrentCaller) -> RetriedChunks:
    """Run a bulk job's failed chunks again (only those); the id may be a chunk task's, as Flower shows it."""
    job_id = job_of_task(job_id)
    require_own_work(client, settings, caller, job_id)
    client.status(job_id)  # 404 for a training run's id
    return RetriedChunks(job_id=job_id, chunks=client.retry(job_id))


@router.delete(
    "/v1/jobs/{job_id}", response_model=JobStatus | TrainingStatus, dependencies=SUBMIT, responses=error_responses(409)
)
def cancel_job(job_id: str, settings: Settings, client: Client, caller: CurrentCaller) -> JobStatus | TrainingStatus:
    """Cancel a bulk job or a training run, for good (it survives worker restarts)."""
    require_own_work(client, settings, caller, job_id)
    status = client.cancel(job_id)
    audited(client, settings, caller, "cancel", job_id)
    return status
