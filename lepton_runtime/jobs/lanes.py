"""The interactive lane in Redis: one stream per tenant, admission under the tenant's quota, reads weighted
by tenant, answered requests acknowledged and deleted, and the requests of dead workers claimed again.

A one-text (or few-text) request is one stream entry, not a Celery message: the worker processes read
the streams themselves (workers/interactive.py), many requests at a time, and run them in one batch.
Each tenant's stream is its queue of waiting work, so a tenant over its quota is refused at once while
the others go on, and reads take from every tenant in proportion to its weight.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from lepton_runtime import unicode_text
from lepton_runtime.constants import DEFAULT_TENANT
from lepton_runtime.errors import InvalidInputError, QuotaExceededError
from lepton_runtime.jobs.keys import (
    INTERACTIVE_ADMITTED_KEY,
    INTERACTIVE_GROUP,
    INTERACTIVE_REJECTED_KEY,
    INTERACTIVE_TENANTS_KEY,
    answer_list_key,
    interactive_stream_key,
    request_owner_key,
)
from lepton_runtime.jobs.protocol import RESULT_TTL_S
from lepton_runtime.jobs.scripts import ANSWER_INTERACTIVE

logger = logging.getLogger(__name__)

# A tenant name: letters, digits, '.', '_' and '-', as it appears in keys, tokens and metric labels.
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# An answer's notice (jobs/keys.py answer_list_key) waits this long for its client (seconds).
ANSWER_NOTICE_TTL_S = 60
# The one field of a stream entry.
_REQUEST_FIELD = "request"

# KEYS[1] the tenant's stream, KEYS[2] the tenant set, KEYS[3] the refusal counters, KEYS[4] the admission
# counters, KEYS[5] the request's owner; ARGV: quota, tenant, request JSON, the owner's lifetime (s). -> {1, waiting}
# admitted, {0, waiting} refused (the stream already holds `quota` requests).
_ADMIT = """
local waiting = redis.call('XLEN', KEYS[1])
if waiting >= tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
  return {0, waiting}
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[1], '*', 'request', ARGV[3])
redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
redis.call('SET', KEYS[5], ARGV[2], 'EX', ARGV[4])
return {1, waiting + 1}
"""


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidInputError(
            f"tenant: {tenant!r} is not a tenant name (1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit)"
        )
    return tenant


@dataclass(frozen=True)
class LaneRequest:
    """One interactive request: its id (the Celery result id its answer is stored under), texts, the exact
    model version, who sent it, when, by when it must have run (seconds since the epoch), and what it asks of the
    model (a task, None for the model's own, and its parameters)."""

    id: str
    texts: list[Any]
    model: str
    sha256: str | None
    tenant: str = DEFAULT_TENANT
    enqueued_at: float = field(default_factory=time.time)
    deadline: float | None = None
    task: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # where it was read from: the stream entry, and how often the group has delivered it
    entry: str = ""
    deliveries: int = 1

    def to_json(self) -> str:
        fields = {
            "id": self.id, "texts": self.texts, "model": self.model, "sha256": self.sha256,
            "tenant": self.tenant, "enqueued_at": self.enqueued_at, "deadline": self.deadline,
            **({"task": self.task, "params": self.params} if self.task else {}),
        }  # fmt: skip
        return unicode_text.dumps(fields)

    @classmethod
    def from_entry(cls, entry: str, raw: str | bytes, deliveries: int = 1) -> LaneRequest:
        fields = json.loads(raw)
        if not isinstance(fields.get("texts"), list):
            raise ValueError("texts: not a list")
        return cls(
            id=str(fields["id"]),
            texts=fields["texts"],
            model=str(fields["model"]),
            sha256=fields.get("sha256"),
            tenant=str(fields.get("tenant", DEFAULT_TENANT)),
            enqueued_at=float(fields.get("enqueued_at") or time.time()),
            deadline=fields.get("deadline"),
            task=fields.get("task"),
            params=fields.get("params") or {},
            entry=entry,
            deliveries=deliveries,
        )

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline


def weighted_counts(tenants: Iterable[str], weights: Mapping[str, float], capacity: int) -> dict[str, int]:
    """How many requests to read from each tenant's stream for a batch of ``capacity``: in proportion to
    the weights (1 unless given), at least one each."""
    names = list(tenants)
    if not names:
        return {}
    total = sum(weights.get(name, 1.0) for name in names)
    return {name: max(1, math.ceil(capacity * weights.get(name, 1.0) / total)) for name in names}


class InteractiveLane:
    """The streams of the interactive lane: producers ``admit``, worker processes ``read``, ``claim`` and ``ack``."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._admit = client.register_script(_ADMIT)
        self._answer = client.register_script(ANSWER_INTERACTIVE)
        self._grouped: set[str] = set()

    # -- producers ------------------------------------------------------------------------------------
    def admit(self, request: LaneRequest, *, quota: int, owner_ttl_s: int = RESULT_TTL_S) -> int:
        """Queue ``request`` unless its tenant already has ``quota`` requests waiting, recording its tenant as its
        owner for ``owner_ttl_s`` (as long as its answer is kept); returns how many wait now."""
        keys = [interactive_stream_key(request.tenant), INTERACTIVE_TENANTS_KEY, INTERACTIVE_REJECTED_KEY]
        keys += [INTERACTIVE_ADMITTED_KEY, request_owner_key(request.id)]
        admitted, waiting = self._admit(keys, [quota, request.tenant, request.to_json(), owner_ttl_s])
        if not admitted:
            raise QuotaExceededError(
                f"tenant {request.tenant!r} has {waiting} requests waiting in the interactive lane, its quota "
                f"(LEPTON_TENANT_QUOTAS, default LEPTON_TENANT_QUOTA_REQUESTS) is {quota}; retry after a moment, "
                "send fewer requests at a time, or put large inputs in a bulk job"
            )
        return int(waiting)

    # -- worker processes ------------------------------------------------------------------------------
    def tenants(self) -> list[str]:
        return sorted(_text(name) for name in self.redis.smembers(INTERACTIVE_TENANTS_KEY))

    def activity(self) -> tuple[list[str], dict[str, int], dict[str, int]]:
        """Every tenant, and per tenant the requests admitted and refused since the counters began (one round
        trip): what changed between two looks tells who is sending and who is over its quota."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(INTERACTIVE_TENANTS_KEY)
            pipe.hgetall(INTERACTIVE_ADMITTED_KEY)
            pipe.hgetall(INTERACTIVE_REJECTED_KEY)
            names, admitted, rejected = pipe.execute()
        return (
            sorted(_text(name) for name in names),
            {_text(tenant): int(count) for tenant, count in admitted.items()},
            {_text(tenant): int(count) for tenant, count in rejected.items()},
        )

    def _ensure_groups(self, tenants: Iterable[str]) -> None:
        for tenant in tenants:
            if tenant in self._grouped:
                continue
            try:
                self.redis.xgroup_create(interactive_stream_key(tenant), INTERACTIVE_GROUP, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
            self._grouped.add(tenant)

    def read(self, consumer: str, counts: Mapping[str, int], *, block_ms: int | None = None) -> list[LaneRequest]:
        """New requests for ``consumer``: up to ``counts[tenant]`` from each tenant's stream, in one round trip.
        With ``block_ms``, wait that long for the first one when none waits."""
        if not counts:
            return []
        self._ensure_groups(counts)
        if block_ms is not None:
            streams: Any = {interactive_stream_key(tenant): ">" for tenant in counts}
            replies: Any = self.redis.xreadgroup(
                INTERACTIVE_GROUP, consumer, streams, count=max(counts.values()), block=block_ms
            )
            found: list[Any] = list(replies or [])
        else:
            with self.redis.pipeline(transaction=False) as pipe:
                for tenant, count in counts.items():
                    stream: Any = {interactive_stream_key(tenant): ">"}
                    pipe.xreadgroup(INTERACTIVE_GROUP, consumer, stream, count=count)
                found = [item for reply in pipe.execute() for item in reply or []]
        return self._parsed((stream, entry, fields, 1) for stream, entries in found for entry, fields in entries)

    def claim(self, consumer: str, tenants: Iterable[str], *, idle_ms: int, count: int) -> list[LaneRequest]:
        """Requests delivered to another consumer more than ``idle_ms`` ago and never acknowledged (its process
        died): now ``consumer``'s, each with how often it has been delivered (this time included)."""
        claimed: list[LaneRequest] = []
        names = list(tenants)
        self._ensure_groups(names)
        for tenant in names:
            stream = interactive_stream_key(tenant)
            pending: Any = self.redis.xpending_range(stream, INTERACTIVE_GROUP, "-", "+", count, idle=idle_ms)
            if not pending:
                continue
            deliveries = {_text(item["message_id"]): int(item["times_delivered"]) + 1 for item in pending}
            entries: Any = self.redis.xclaim(stream, INTERACTIVE_GROUP, consumer, idle_ms, list(deliveries))
            claimed += self._parsed((stream, entry, fields, deliveries[_text(entry)]) for entry, fields in entries)
        return claimed

    def _parsed(self, entries: Iterable[tuple[Any, Any, Any, int]]) -> list[LaneRequest]:
        """The requests of stream entries; an entry that is no request of ours (written to Redis by hand) is
        logged and deleted, never handed out again and again."""
        requests, malformed = [], []
        for stream, entry, fields, deliveries in entries:
            if not fields:  # deleted meanwhile (answered by its first consumer after all)
                continue
            try:
                requests.append(LaneRequest.from_entry(_text(entry), _request_field(fields), deliveries))
            except (ValueError, KeyError, TypeError) as error:
                logger.error("interactive lane: entry %s of %s is no request (%s); deleted", entry, stream, error)
                malformed.append((_text(stream), _text(entry)))
        if malformed:
            with self.redis.pipeline(transaction=False) as pipe:
                for stream, entry in malformed:
                    pipe.xack(stream, INTERACTIVE_GROUP, entry)
                    pipe.xdel(stream, entry)
                pipe.execute()
        return requests

    def answer(self, answers: Sequence[tuple[LaneRequest, tuple[str, str, int]]]) -> None:
        """Store each request's answer (result key, encoded Celery meta, TTL s) where its client looks, and
        acknowledge and delete its stream entry in the same script: all of a batch in one call (EVALSHA)."""
        if not answers:
            return
        keys: list[str] = []
        arguments: list[Any] = [ANSWER_NOTICE_TTL_S, INTERACTIVE_GROUP]
        for request, (result_key, meta, ttl_s) in answers:
            keys += [result_key, answer_list_key(request.id), interactive_stream_key(request.tenant)]
            arguments += [meta, ttl_s, request.entry]
        self._answer(keys, arguments)

    def ack(self, requests: Iterable[LaneRequest]) -> None:
        """Acknowledge and delete requests without answering them (tests; ``answer`` does both)."""
        by_stream: dict[str, list[str]] = {}
        for request in requests:
            by_stream.setdefault(interactive_stream_key(request.tenant), []).append(request.entry)
        if not by_stream:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for stream, entries in by_stream.items():
                pipe.xack(stream, INTERACTIVE_GROUP, *entries)
                pipe.xdel(stream, *entries)
            pipe.execute()

    # -- what waits --------------------------------------------------------------------------------------
    def depths(self, tenants: list[str] | None = None) -> dict[str, int]:
        """Requests waiting or running per tenant (of ``tenants``, default all)."""
        tenants = self.tenants() if tenants is None else tenants
        with self.redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.xlen(interactive_stream_key(tenant))
            lengths = pipe.execute()
        return dict(zip(tenants, (int(n) for n in lengths), strict=True))

    def rejected(self) -> dict[str, int]:
        """Requests refused over their tenant's quota, per tenant, since the counters began."""
        counts: Any = self.redis.hgetall(INTERACTIVE_REJECTED_KEY)
        return {_text(tenant): int(count) for tenant, count in counts.items()}

    def oldest_enqueued_at(self, tenants: list[str] | None = None) -> float | None:
        """When the oldest request still in the lane was admitted (its entry id is its time in ms)."""
        tenants = self.tenants() if tenants is None else tenants
        with self.redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.xrange(interactive_stream_key(tenant), count=1)
            firsts: Any = pipe.execute()
        times = [int(_text(entries[0][0]).split("-")[0]) / 1000 for entries in firsts if entries]
        return min(times) if times else None


def _request_field(fields: Mapping[Any, Any]) -> str | bytes:
    value: str | bytes = fields.get(_REQUEST_FIELD) or fields[_REQUEST_FIELD.encode()]
    return value


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = ["DEFAULT_TENANT", "InteractiveLane", "LaneRequest", "check_tenant", "weighted_counts"]
