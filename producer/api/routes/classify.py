"""``/v1/classify``: a few texts classified and answered when done (200), or the job id after ``wait_s`` (202).

Up to LEPTON_INTERACTIVE_MAX_TEXTS texts take the interactive lane, under the caller's tenant quota (429
with Retry-After over it); more take the bulk lane, refused with 429 while its queue is too deep.
"""

from __future__ import annotations

from typing import Annotated

from celery.result import AsyncResult
from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response

from lepton_runtime.constants import MAX_API_WAIT_S
from lepton_runtime.errors import JobTimeoutError
from lepton_runtime.prediction import Prediction
from producer.api.dependencies import READ, SUBMIT, Client, CurrentCaller, Settings, few_texts_fit
from producer.api.errors import error_responses
from producer.api.schemas import ClassifyRequest, ClassifyResponse, ModelProvenance, PredictionOut, id_links
from producer.api.tenancy import require_own_work
from producer.client import ClassifyJob

router = APIRouter(tags=["classify"], responses=error_responses(401, 403, 404, 422, 503, 500))
# OpenAPI link: a request's answer is read again by its id.
ANSWER_LINKS = id_links("classify_result")


@router.post(
    "/v1/classify",
    response_model=ClassifyResponse,
    dependencies=SUBMIT,
    status_code=200,
    responses={
        200: {"links": ANSWER_LINKS},
        202: {
            "model": ClassifyResponse,
            "description": "Not done within wait_s: poll status_url.",
            "links": ANSWER_LINKS,
        },
        **error_responses(413, 429, 504),
    },
)
def classify(
    body: ClassifyRequest,
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Classify a few texts: answered when done (200), or with the job id after ``wait_s`` (202). With
    ``deadline_ms``, a request no worker could start in time is answered 504 ``expired``."""
    few_texts_fit(body.texts, settings, client)
    job = client.classify(
        body.texts,
        model=body.model,
        idempotency_key=idempotency_key,
        deadline_s=body.deadline_ms / 1000 if body.deadline_ms is not None else None,
        tenant=caller.tenant,
    )
    wait_s = settings.api_classify_wait_s if body.wait_s is None else body.wait_s
    return classify_answer(job, min(wait_s, settings.api_max_wait_s))


@router.get(
    "/v1/classify/{job_id}",
    response_model=ClassifyResponse,
    dependencies=READ,
    responses={202: {"model": ClassifyResponse, "description": "Still queued or running."}},
)
def classify_result(
    job_id: str,
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    wait_s: Annotated[float, Query(ge=0, le=MAX_API_WAIT_S)] = 0.0,
) -> Response:
    """The answer of an earlier classify request (202 while it runs); 404 at once for an id that names no request
    of the caller's (never sent, expired, or another tenant's)."""
    require_own_work(client, settings, caller, job_id)
    job = ClassifyJob(job_id, AsyncResult(job_id, app=client.celery))
    return classify_answer(job, min(max(wait_s, 0.0), settings.api_max_wait_s))


def classify_answer(job: ClassifyJob, wait_s: float) -> Response:
    """The predictions of classify ``job`` (200), or its state if it is not done within ``wait_s`` (202)."""
    job_id = job.id
    status_url = f"/v1/classify/{job_id}"
    try:
        answers = job.wait(wait_s)
    except JobTimeoutError:
        pending = ClassifyResponse(job_id=job_id, state=job.state, status_url=status_url)
        return JSONResponse(pending.model_dump(), status_code=202)
    provenance = next((a.model.as_dict() for a in answers if isinstance(a, Prediction)), None)
    done = ClassifyResponse(
        job_id=job_id,
        state="succeeded",
        predictions=[PredictionOut.of(i, answer) for i, answer in enumerate(answers)],
        model=ModelProvenance(**provenance) if provenance else None,
        status_url=status_url,
    )
    return JSONResponse(done.model_dump())
