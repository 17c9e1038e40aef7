"""The audit trail: every administrative action and training submission, who did it and when, in one bounded
Redis stream (``lepton audit``, ``GET /v1/audit``).

An entry names the tenant, a short fingerprint of the token (never the token), the action and its target. The
stream keeps about LEPTON_AUDIT_MAX_ENTRIES entries; the oldest go first.
"""

from __future__ import annotations

import time
from typing import Literal, cast

import redis
from pydantic import BaseModel, Field

from lepton_runtime.constants import DEFAULT_AUDIT_MAX_ENTRIES
from lepton_runtime.jobs.keys import AUDIT_KEY

AuditAction = Literal["train", "publish", "promote", "rollback", "delete", "share", "replay", "cancel"]
# Entries read from the stream per round trip while a filtered listing fills up.
_PAGE = 500


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
