"""The interactive lane's consumer in each worker process: reads waiting requests from every tenant's stream,
waits a moment for company, runs them as one batch in the process's interactive turn, answers each one.

It is a thread beside the Celery pool process's task thread: a chunk task and this thread take turns on
the model between batches (workers/scheduler.py), so a request waits for one bulk batch at most. Each
answer is stored where Celery clients look for it (the result backend, under the request's id), so
``ClassifyJob.wait`` and ``GET /v1/classify/{id}`` read it like any task result.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from lepton_runtime import constants
from lepton_runtime.constants import CLASSIFY_TASK, INFERENCE_QUEUE
from lepton_runtime.errors import ExpiredError, InvalidInputError, LeptonError, PoisonMessageError
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.jobs import DeadLetter, DeadLetterStore, new_dead_letter
from lepton_runtime.jobs.lanes import InteractiveLane, LaneRequest, weighted_counts
from workers.execution import run_requests
from workers.scheduler import LaneScheduler

logger = logging.getLogger(__name__)

# How long one read blocks when nothing waits; a new tenant's first request may wait this long (or
# TENANTS_REFRESH_S on a busy lane) before a consumer reads its stream.
READ_BLOCK_MS = 250
# How often a consumer looks for requests that a dead process had taken.
CLAIM_INTERVAL_S = 1.0
# Waiting for the turn longer than this means requests may have arrived meanwhile: read again.
TOP_UP_AFTER_WAIT_S = 0.002
TENANTS_REFRESH_S = 0.25
# A tenant counts as sending (or as refused over its quota) for this long after its counter last moved.
ACTIVITY_WINDOW_S = 1.0
# What counts in "served lately" when tenants' requests are ordered (seconds, the time constant of a decay).
FAIRNESS_WINDOW_S = 1.0
# A tenant counts as served lately from this many texts (decayed); one served more than OVER_SHARE x the least
# served of those (by weight) is read one request per batch while the others are served too.
ACTIVE_TEXTS = 1.0
OVER_SHARE = 2.0


@dataclass(frozen=True)
class LaneOptions:
    """How a worker process serves the interactive lane (from LEPTON_* settings, read at the entry point)."""

    batch_wait_ms: float = constants.DEFAULT_BATCH_WAIT_MS
    max_batch_requests: int = constants.DEFAULT_MAX_BATCH_REQUESTS
    claim_after_s: float = constants.DEFAULT_INTERACTIVE_CLAIM_AFTER_S
    max_deliveries: int = constants.DEFAULT_MAX_DELIVERIES
    weights: dict[str, float] = field(default_factory=dict)
    # this process's place among its worker's processes: only the first serves a confined tenant
    process_rank: int = 0
    # whether the process can serve its models now (workers/follow.py); while not, it reads no request
    ready: Callable[[], bool] = lambda: True


class LaneObserver(Protocol):
    def answered(self, request: LaneRequest, outcome: str, latency_s: float) -> None: ...
    def batch(self, requests: int, turn_wait_s: float) -> None: ...


class BatchEvents(Protocol):
    """Where each batch is told as it ends (workers/lane_events.py: Celery task events, for Flower); ``flush``
    when the lane is idle."""

    def batch_done(self, outcomes: list[tuple[LaneRequest, str]], runtime_s: float) -> None: ...
    def flush(self) -> None: ...


class AnswerEncoder(Protocol):
    """The result backend: what storing a result writes (result key, encoded meta, TTL s)."""

    def encoded(self, task_id: str, result: Any, state: str) -> tuple[str, str, int]: ...


class InteractiveConsumer:
    """One thread per worker process; ``start`` after the runtime is warm, ``stop`` before the process ends."""

    def __init__(
        self,
        lane: InteractiveLane,
        engines: EngineCache,
        scheduler: LaneScheduler,
        answers: Callable[[], AnswerEncoder],
        options: LaneOptions,
        consumer: str,
        observer: LaneObserver | None = None,
        dead_letters: DeadLetterStore | None = None,
        events: Callable[[], BatchEvents] | None = None,
    ) -> None:
        self.lane = lane
        self.engines = engines
        self.scheduler = scheduler
        self.answers = answers  # called in the consumer's thread: Celery's backends are per thread
        self.options = options
        self.consumer = consumer
        self.observer = observer
        self.dead_letters = dead_letters
        self.make_events = events  # called in the consumer's thread (a kombu connection is per thread)
        self._events: BatchEvents | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_claim_at = 0.0
        self._tenants: list[str] = []
        self._tenants_read_at = -TENANTS_REFRESH_S
        self._had_company = False  # whether the last batch read held more than one request
        # tenants over their quota while others send: served by each worker's first process only
        self._confined: set[str] = set()
        self._counters: tuple[dict[str, int], dict[str, int]] | None = None  # admitted, refused at the last look
        self._moved_at: dict[tuple[str, str], float] = {}  # (counter, tenant) -> when it last moved
        self._capped: set[str] = set()  # tenants read one request per batch (_read_counts)
        self._served: dict[str, float] = {}  # texts served per tenant, decaying over FAIRNESS_WINDOW_S
        self._served_at = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lepton-interactive", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        backoff_s = 0.1
        while not self._stopping.is_set():
            try:
                if not self.step() and self._events is not None:
                    self._events.flush()  # idle: what the last batches did is told now
                backoff_s = 0.1
            except redis.RedisError as error:
                logger.warning("interactive lane: Redis error (%s); trying again in %.1f s", error, backoff_s)
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
            except Exception:
                logger.exception("interactive lane: unexpected error (a bug); the requests read are claimed again")
                self._stopping.wait(1.0)

    # -- one batch ---------------------------------------------------------------------------------
    def step(self) -> int:
        """Read and serve one batch of requests; returns how many were answered."""
        if not self.options.ready():  # its models cannot load now: the requests are left to processes that have them
            self._stopping.wait(READ_BLOCK_MS / 1000)
            return 0
        tenants = self._known_tenants()
        if not tenants:
            self._stopping.wait(READ_BLOCK_MS / 1000)
            return 0
        if time.monotonic() >= self._next_claim_at:
            self._next_claim_at = time.monotonic() + CLAIM_INTERVAL_S
            idle_ms = int(self.options.claim_after_s * 1000)
            # one at a time, each alone: one of them may be what killed the process that had them, and
            # the others must not die with it again
            served = 0
            while served < self.options.max_batch_requests and (
                claimed := self.lane.claim(self.consumer, tenants, idle_ms=idle_ms, count=1)
            ):
                served += self.serve(claimed)
            if served:
                return served
        capacity = self.options.max_batch_requests
        counts = self._read_counts(tenants, capacity)
        if not counts:  # every tenant with requests is confined to another process
            self._stopping.wait(READ_BLOCK_MS / 1000)
            return 0
        requests = self.lane.read(self.consumer, counts, block_ms=READ_BLOCK_MS)
        if not requests:
            return 0
        if len(requests) < capacity and self.options.batch_wait_ms > 0 and self._had_company:
            # the bounded wait for company, spent only while callers come together: a lone caller's
            # requests (one after the other) would only be slower for it
            self._stopping.wait(self.options.batch_wait_ms / 1000)
            requests += self._top_up(tenants, capacity - len(requests))
        # company that a wait could bring: a tenant read one request per batch (_read_counts) brings none
        self._had_company = sum(request.tenant not in self._capped for request in requests) > 1
        return self.serve(requests)

    def serve(self, requests: list[LaneRequest]) -> int:
        """Answer ``requests``: too often delivered ones as lost, expired ones as expired, the rest run, one
        batch per tenant, the tenant served least lately (by weight) first: a tenant's requests never wait
        inside another tenant's batch. Failures worth replaying (a corrupt model, a model failing at run
        time, a lost worker) are dead-lettered as ``lepton.classify`` tasks."""
        lost = [(request, _lost(request)) for request in requests if request.deliveries > self.options.max_deliveries]
        if lost:
            self._finish(lost, 0.0, 0.0)
        groups = self._fair_groups(
            [request for request in requests if request.deliveries <= self.options.max_deliveries]
        )
        return len(lost) + sum(self._serve_group(group, top_up=len(groups) == 1) for group in groups)

    def _serve_group(self, requests: list[LaneRequest], *, top_up: bool) -> int:
        asked_at = time.monotonic()
        with self.scheduler.turn("interactive"):
            turn_at = time.monotonic()
            turn_wait_s = turn_at - asked_at
            capacity = self.options.max_batch_requests - len(requests)
            if top_up and turn_wait_s > TOP_UP_AFTER_WAIT_S and capacity > 0:
                requests = requests + self._top_up(self._tenants, capacity)
            answers = self._run(requests)
            turn_s = time.monotonic() - turn_at
        self._finish(answers, turn_wait_s, turn_s)
        for request in requests:
            self._served[request.tenant] = self._served.get(request.tenant, 0.0) + len(request.texts)
        # the answering (and the reading before) is this lane's work too, though outside its turn
        self.scheduler.charge("interactive", time.monotonic() - asked_at - turn_wait_s - turn_s)
        return len(answers)

    def _fair_groups(self, requests: list[LaneRequest]) -> list[list[LaneRequest]]:
        """``requests`` by tenant, the tenant with the fewest texts served lately (over its weight) first."""
        served = self._served_by_weight()
        groups: dict[str, list[LaneRequest]] = {}
        for request in requests:
            groups.setdefault(request.tenant, []).append(request)
        order = sorted(groups, key=lambda tenant: served.get(tenant, 0.0))
        return [groups[tenant] for tenant in order]

    def _run(self, requests: list[LaneRequest]) -> list[tuple[LaneRequest, Any]]:
        now = time.time()
        answers: list[tuple[LaneRequest, Any]] = []
        groups: dict[tuple[str, str | None], list[LaneRequest]] = {}
        for request in requests:
            if request.expired(now):
                late_ms = (now - (request.deadline or now)) * 1000
                answers.append((request, ExpiredError(
                    f"request {request.id} was not run: its deadline passed {late_ms:.0f} ms before a worker was free; "
                    "the fleet is overloaded (add workers) or the deadline is too short"
                )))  # fmt: skip
            else:
                groups.setdefault((request.model, request.sha256), []).append(request)
        for (model, sha256), group in groups.items():
            try:
                engine = self.engines.get(model, content_sha256=sha256)
                asks = [(request.task, request.params) for request in group]
                results = run_requests(engine, [request.texts for request in group], asks=asks)
            except LeptonError as error:
                results = [error] * len(group)
            answers += zip(group, results, strict=True)
        return answers

    def _finish(self, answers: list[tuple[LaneRequest, Any]], turn_wait_s: float, runtime_s: float) -> None:
        """Dead letters of the failures worth replaying first, then every answer stored and its request
        acknowledged together (one script for the batch, one round trip); then the metrics and the event."""
        if self.dead_letters is not None:
            for request, answer in answers:
                if isinstance(answer, LeptonError) and not isinstance(answer, InvalidInputError | ExpiredError):
                    self.dead_letters.add(_dead_letter(request, answer))
        backend = self.answers()
        encoded = [
            (request, backend.encoded(request.id, answer, "FAILURE" if isinstance(answer, Exception) else "SUCCESS"))
            for request, answer in answers
        ]
        self.lane.answer(encoded)
        outcomes = [(request, _outcome(answer)) for request, answer in answers]
        if self.observer is not None:
            answered_at = time.time()
            for request, outcome in outcomes:
                self.observer.answered(request, outcome, answered_at - request.enqueued_at)
            self.observer.batch(len(answers), turn_wait_s)
        if self.make_events is not None and outcomes:
            if self._events is None:
                self._events = self.make_events()
            self._events.batch_done(outcomes, runtime_s)

    def _top_up(self, tenants: list[str], capacity: int) -> list[LaneRequest]:
        counts = self._read_counts(tenants, capacity)
        return self.lane.read(self.consumer, counts) if counts else []

    def _read_counts(self, tenants: list[str], capacity: int) -> dict[str, int]:
        """How many requests to read from each tenant's stream: ``capacity`` split by weight; but while other
        tenants are served too, a tenant served more than OVER_SHARE x the least served one (by weight) gets
        one request per batch. Its batches stay short, so another tenant's request that arrives meanwhile
        waits for a short batch only, wherever it lands."""
        counts = weighted_counts(tenants, self.options.weights, capacity)
        by_weight = self._served_by_weight()
        active = {
            tenant: served
            for tenant, served in by_weight.items()
            if self._served[tenant] >= ACTIVE_TEXTS and tenant in counts
        }
        self._capped = set()
        if len(active) > 1:
            least = min(active.values())
            self._capped = {tenant for tenant, served in active.items() if served > OVER_SHARE * least}
            counts.update(dict.fromkeys(self._capped, 1))
        if self.options.process_rank > 0:  # a confined tenant is read by the worker's first process only
            for tenant in self._confined:
                counts.pop(tenant, None)
        return counts

    def _served_by_weight(self) -> dict[str, float]:
        """Texts served per tenant lately (``_served`` decayed over FAIRNESS_WINDOW_S, to now) over its weight."""
        now = time.monotonic()
        decay = math.exp(-(now - self._served_at) / FAIRNESS_WINDOW_S)
        self._served = {tenant: served * decay for tenant, served in self._served.items()}
        self._served_at = now
        weights = self.options.weights
        return {tenant: served / weights.get(tenant, 1.0) for tenant, served in self._served.items()}

    def _known_tenants(self) -> list[str]:
        """Every tenant, looked up every TENANTS_REFRESH_S with the lane's counters (``_confine``)."""
        now = time.monotonic()
        if self._tenants and now - self._tenants_read_at < TENANTS_REFRESH_S:
            return self._tenants
        self._tenants, admitted, refused = self.lane.activity()
        self._tenants_read_at = now
        self._confine(admitted, refused, now)
        return self._tenants

    def _confine(self, admitted: dict[str, int], refused: dict[str, int], now: float) -> None:
        """Which tenants are confined, from the lane's admission and refusal counters: a tenant refused over
        its quota within ACTIVITY_WINDOW_S, while another tenant that is not sends. Each worker's first process
        alone serves it then, so its overload cannot hold every process when the others' requests come:
        theirs find a process that runs short batches of their own."""
        before_admitted, before_refused = self._counters or (admitted, refused)
        self._counters = (admitted, refused)
        for counter, counts, before in (("admitted", admitted, before_admitted), ("refused", refused, before_refused)):
            for tenant, count in counts.items():
                if count != before.get(tenant, 0):  # a tenant new since the last look moved from 0
                    self._moved_at[(counter, tenant)] = now
        recent = {key for key, at in self._moved_at.items() if now - at <= ACTIVITY_WINDOW_S}
        refusing = {tenant for counter, tenant in recent if counter == "refused"}
        sending = {tenant for counter, tenant in recent if counter == "admitted"} - refusing
        confined = refusing if sending else set()
        if confined != self._confined and self.options.process_rank == 0:  # told once per worker
            logger.info(
                "interactive lane: %s served by each worker's first process only (over quota while %s send)",
                ", ".join(sorted(confined)) or "no tenant", ", ".join(sorted(sending)) or "nobody else",
            )  # fmt: skip
        self._confined = confined


def _outcome(answer: Any) -> str:
    if isinstance(answer, ExpiredError):
        return "expired"
    return "failed" if isinstance(answer, Exception) else "answered"


def _dead_letter(request: LaneRequest, error: LeptonError) -> DeadLetter:
    """A failed interactive request as a ``lepton.classify`` task under its own id: `lepton dlq replay` sends it
    to the bulk lane and the answer lands where the caller looks."""
    logger.error("interactive request %s dead-lettered [%s]: %s", request.id, error.code, error)
    return new_dead_letter(
        id=request.id, tenant=request.tenant, queue=INFERENCE_QUEUE, task=CLASSIFY_TASK,
        args=[request.texts, request.model, request.sha256],
        code=error.code, message=str(error), attempts=request.deliveries,
    )  # fmt: skip


def _lost(request: LaneRequest) -> PoisonMessageError:
    return PoisonMessageError(
        f"interactive request {request.id} was taken by {request.deliveries - 1} worker processes that died "
        "before answering it; it is not run again. Check the worker logs (out of memory?)"
    )
