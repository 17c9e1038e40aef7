"""``/v1/dlq``: the dead letters (tasks that failed for good or kept killing workers), listed and replayed
(``admin`` scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lepton_runtime.jobs import DeadLetterStore
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.sending import replay_dead_letter
from producer.api.dependencies import ADMIN, Client, Settings
from producer.api.errors import error_responses
from producer.api.schemas import DeadLetterOut, DeadLettersResponse

router = APIRouter(tags=["dead letters"], dependencies=ADMIN, responses=error_responses(401, 403, 404, 422, 503, 500))


@router.get("/v1/dlq", response_model=DeadLettersResponse)
def dead_letters(
    settings: Settings, client: Client, queue: Annotated[str | None, Query(description="Only this queue's.")] = None
) -> DeadLettersResponse:
    """Every dead letter (of ``queue``, if given), with its error code and message."""
    with broker_errors(settings.broker_url):
        letters = DeadLetterStore(client.redis, ttl_s=settings.job_ttl_s).list(queue)
    return DeadLettersResponse(
        dead_letters=[DeadLetterOut.model_validate(letter, from_attributes=True) for letter in letters]
    )


@router.post("/v1/dlq/{letter_id}/replay", response_model=DeadLetterOut)
def replay(letter_id: str, settings: Settings, client: Client) -> DeadLetterOut:
    """Send a dead-lettered task again under its own id (a bulk chunk rejoins its job); it leaves the dead letters."""
    with broker_errors(settings.broker_url):
        letters = DeadLetterStore(client.redis, ttl_s=settings.job_ttl_s)
        letter = replay_dead_letter(letter_id, letters, client.jobs, client.celery)
    return DeadLetterOut.model_validate(letter, from_attributes=True)
