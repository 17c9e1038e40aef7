"""What a caller may see and do: its own tenant's work (another tenant's id is answered exactly like an unknown one),
every tenant's for the operator tenant (LEPTON_OPERATOR_TENANT), models by their owners' rules, and the audit trail
of what it did."""

from __future__ import annotations

from lepton_runtime.errors import ForbiddenError, JobNotFoundError, ModelNotFoundError
from lepton_runtime.jobs.audit import AuditAction, AuditTrail
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.owners import may_see
from lepton_runtime.registry.owners import ModelOwner, check_administrator
from lepton_runtime.settings import LeptonSettings
from lepton_runtime.tokens import Caller
from producer.client import LeptonClient


def is_operator(caller: Caller, settings: LeptonSettings) -> bool:
    return caller.tenant == settings.operator_tenant


def listed_tenant(caller: Caller, settings: LeptonSettings, requested: str | None) -> str | None:
    """Whose work a listing shows: the caller's own; the operator's choice (None: every tenant's)."""
    if is_operator(caller, settings):
        return requested
    if requested not in (None, caller.tenant):
        raise ForbiddenError(
            f"tenant: only the operator tenant (LEPTON_OPERATOR_TENANT) lists another tenant's work, and this token"
            f" is {caller.tenant!r}'s; leave out tenant= to list your own"
        )
    return caller.tenant


def unknown_work(work_id: str) -> JobNotFoundError:
    """The one answer for an id that names no work of the caller's: never submitted, expired, or another tenant's."""
    return JobNotFoundError(
        f"no job {work_id!r}: never submitted, expired, or lost in a Redis failover before a replica held it; list"
        " your jobs with GET /v1/jobs (`lepton jobs list`), or submit it again"
    )


def require_own_work(client: LeptonClient, settings: LeptonSettings, caller: Caller, work_id: str) -> None:
    """Raise ``unknown_work`` unless ``work_id`` (a bulk job, training run or one-text request) is the caller's to
    see. One Redis round trip of the same reads whatever the id names, so a foreign id costs what an unknown one
    does."""
    with broker_errors(settings.broker_url):
        owner = client.owner(work_id)
    if not may_see(owner, caller.tenant, settings.operator_tenant):
        raise unknown_work(work_id)


def administered_model(
    client: LeptonClient, settings: LeptonSettings, caller: Caller, name: str, action: AuditAction
) -> ModelOwner:
    """The owner of model ``name``, once the caller is found to be allowed to ``action`` it (403 otherwise)."""
    owner = client.registry.owner(name)
    if owner is None:
        raise ModelNotFoundError(f"no model {name!r} in {client.registry.location}; list models with GET /v1/models")
    check_administrator(name, owner, caller.tenant, settings.operator_tenant, action)
    return owner


def audited(
    client: LeptonClient, settings: LeptonSettings, caller: Caller, action: AuditAction, target: str, detail: str = ""
) -> None:
    """Record what the caller did in the audit trail."""
    with broker_errors(settings.broker_url):
        trail = AuditTrail(client.redis, max_entries=settings.audit_max_entries)
        trail.record(tenant=caller.tenant, token=caller.fingerprint, action=action, target=target, detail=detail)
