"""``/v1/audit``: the audit trail of administrative actions and training submissions (the operator tenant's
``admin`` tokens only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lepton_runtime.errors import ForbiddenError
from lepton_runtime.jobs.audit import AuditTrail
from lepton_runtime.jobs.connection import broker_errors
from producer.api.dependencies import ADMIN, Client, CurrentCaller, Settings
from producer.api.errors import error_responses
from producer.api.schemas import AuditResponse
from producer.api.tenancy import is_operator

# Entries one GET /v1/audit returns at most.
MAX_AUDIT_ENTRIES = 10_000

router = APIRouter(tags=["audit"], dependencies=ADMIN, responses=error_responses(401, 403, 422, 503, 500))


@router.get("/v1/audit", response_model=AuditResponse)
def audit(
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    tenant: Annotated[str | None, Query(description="Only this tenant's actions.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_ENTRIES)] = 100,
) -> AuditResponse:
    """Who published, promoted, rolled back, deleted, shared, replayed, cancelled or trained what, and when; newest
    first."""
    if not is_operator(caller, settings):
        raise ForbiddenError(
            f"the audit trail is the operator's: use an admin token of the operator tenant"
            f" ({settings.operator_tenant!r}, LEPTON_OPERATOR_TENANT); this token is {caller.tenant!r}'s"
        )
    with broker_errors(settings.broker_url):
        entries = AuditTrail(client.redis, max_entries=settings.audit_max_entries).entries(tenant=tenant, limit=limit)
    return AuditResponse(entries=entries)
