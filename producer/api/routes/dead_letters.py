"""``/v1/dlq``: the dead letters (tasks that failed for good or kept killing workers), listed and replayed
(``admin`` scope): a tenant's own; the operator tenant's, every tenant's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lepton_runtime.jobs import DeadLetterStore
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.owners import may_see
from lepton_runtime.jobs.sending import replay_dead_letter
from producer.api.dependencies import ADMIN, Client, CurrentCaller, Settings
from producer.api.errors import error_responses
from producer.api.schemas import DeadLetterOut, DeadLettersResponse
from producer.api.tenancy import audited, listed_tenant

router = APIRouter(tags=["dead letters"], dependencies=ADMIN, responses=error_responses(401, 403, 404, 422, 503, 500))


@router.get("/v1/dlq", response_model=DeadLettersResponse)
def dead_letters(
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    queue: Annotated[str | None, Query(description="Only this queue's.")] = None,
    tenant: Annotated[str | None, Query(description="The operator's filter: this tenant's only.")] = None,
) -> DeadLettersResponse:
    """The caller's dead letters (of ``queue``, if given), with their error codes and messages."""
    whose = listed_tenant(caller, settings, tenant)
    with broker_errors(settings.broker_url):
        letters = DeadLetterStore(client.redis, ttl_s=settings.job_ttl_s).list(queue, tenant=whose)
    return DeadLettersResponse(
        dead_letters=[DeadLetterOut.model_validate(letter, from_attributes=True) for letter in letters]
    )


@router.post("/v1/dlq/{letter_id}/replay", response_model=DeadLetterOut)
def replay(letter_id: str, settings: Settings, client: Client, caller: CurrentCaller) -> DeadLetterOut:
    """Send a dead-lettered task again under its own id (a bulk chunk rejoins its job); it leaves the dead letters.
    Another tenant's letter is answered like an unknown one."""
    with broker_errors(settings.broker_url):
        letters = DeadLetterStore(client.redis, ttl_s=settings.job_ttl_s)
        if not may_see(letters.tenant_of(letter_id), caller.tenant, settings.operator_tenant):
            raise letters.not_found(letter_id)
        letter = replay_dead_letter(letter_id, letters, client.jobs, client.celery)
    audited(client, settings, caller, "replay", letter_id, f"{letter.task} [{letter.code}]")
    return DeadLetterOut.model_validate(letter, from_attributes=True)
