"""The audit trail: every administrative action and training submission, who did it and when, in one bounded
Redis stream (``lepton audit``, ``GET /v1/audit``).

An entry names the tenant, a short fingerprint of the token (never the token), the action and its target. The
stream keeps about LEPTON_AUDIT_MAX_ENTRIES entries; the oldest go first.
"""

from __future__ import annotations

import logging
import time
from typing import Literal, cast

import redis
from pydantic import BaseModel, Field

from lepton_runtime.constants import DEFAULT_AUDIT_MAX_ENTRIES
from lepton_runtime.jobs.connection import connect_with
from lepton_runtime.jobs.keys import AUDIT_KEY
from lepton_runtime.settings import LeptonSettings

logger = logging.getLogger(__name__)

AuditAction = Literal["train", "publish", "promote", "rollback", "delete", "share", "replay", "cancel"]
# Entries read from the stream per round trip while a filtered listing fills up.
_PAGE = 500
# What the trail says of the token of an action taken with a `lepton` command (it talks to Redis directly).
COMMAND_TOKEN = "cli"
# How long a command waits for Redis to take its audit entry (seconds).
COMMAND_AUDIT_TIMEOUT_S = 1.0


class AuditEntry(BaseModel):
    """One recorded action."""

    id: str = Field(description="The stream entry id (milliseconds-sequence): the order of the trail.")
    at: float = Field(description="When, in seconds since the epoch.")
    tenant: str = Field(description="The tenant the action was taken as.")
    token: str = Field(description="A short fingerprint of the token used (`cli` for the command line).")
    action: AuditAction
    target: str = Field(description="What it acted on: a model reference, a job, run or dead-letter id.")
    detail: str = ""


class AuditTrail:
    """Append and read the ``lepton:audit`` stream."""

    def __init__(self, client: redis.Redis, *, max_entries: int = DEFAULT_AUDIT_MAX_ENTRIES) -> None:
        self.redis = client
        self.max_entries = max_entries

    def record(self, *, tenant: str, token: str, action: AuditAction, target: str, detail: str = "") -> None:
        fields = {"at": repr(time.time()), "tenant": tenant, "token": token, "action": action, "target": target}
        fields["detail"] = detail
        self.redis.xadd(AUDIT_KEY, fields, maxlen=self.max_entries, approximate=True)  # type: ignore[arg-type]

    def entries(self, *, tenant: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries (of ``tenant``, or of every tenant), newest first."""
        found: list[AuditEntry] = []
        before = "+"
        while len(found) < limit:
            page = cast(list[tuple[str, dict[str, str]]], self.redis.xrevrange(AUDIT_KEY, max=before, count=_PAGE))
            for entry_id, fields in page:
                if tenant is None or fields.get("tenant") == tenant:
                    found.append(AuditEntry.model_validate({"id": entry_id, **fields}))
            if len(page) < _PAGE:
                break
            before = f"({page[-1][0]}"
        return found[:limit]


def record_command(settings: LeptonSettings, action: AuditAction, target: str, detail: str = "") -> None:
    """Record what a `lepton` command did (tenant LEPTON_TENANT, token ``cli``). On the embedded default with no
    Redis running there is no fleet and so no trail: that is logged at debug level; a configured Redis that does not
    answer is warned about, and the command's own work stands."""
    try:
        client = connect_with(settings, timeout_s=COMMAND_AUDIT_TIMEOUT_S, retries=0)
        trail = AuditTrail(client, max_entries=settings.audit_max_entries)
        trail.record(tenant=settings.tenant, token=COMMAND_TOKEN, action=action, target=target, detail=detail)
    except redis.RedisError as error:
        if not settings.broker_configured and isinstance(error, redis.ConnectionError):
            logger.debug("%s %s: no embedded Redis runs, so no audit trail to add to (%s)", action, target, error)
            return
        logger.warning("%s %s was done, but the audit trail in Redis could not record it (%s)", action, target, error)
