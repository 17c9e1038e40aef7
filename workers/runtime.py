"""One worker process's state (settings, Redis stores, loaded engines), built lazily after the fork."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from lepton_runtime.errors import LeptonError
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import DeadLetterStore, DeliveryCounter, JobStore, TrainingRuns, connect_with
from lepton_runtime.jobs.audit import AuditTrail
from lepton_runtime.jobs.bulk_data import BulkData
from lepton_runtime.jobs.data_store import DataStore
from lepton_runtime.jobs.keys import worker_ready_key
from lepton_runtime.jobs.lanes import InteractiveLane
from lepton_runtime.machine import available_cores
from lepton_runtime.registry import open_registry
from lepton_runtime.settings import LeptonSettings
from workers.execution import BatchPolicy
from workers.follow import AliasFollower
from workers.interactive import BatchEvents, InteractiveConsumer, LaneOptions
from workers.scheduler import LaneScheduler

logger = logging.getLogger(__name__)

# A worker's readiness list outlives a slow start, not a restart.
READY_TTL_S = 600
# Interactive requests served this recently make bulk batches short.
INTERACTIVE_ACTIVE_WINDOW_S = 2.0


PoolKind = Literal["prefork", "solo", "threads"]
Device = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class WorkerOptions:
    """How `lepton worker` was asked to run: name, device, threads per process, models to warm."""

    name: str
    pool: PoolKind = "prefork"
    device: Device = "cpu"
    intra_op_threads: int = 1
    warm: list[str] = field(default_factory=list)
    metrics: bool = False  # Prometheus metrics on (PROMETHEUS_MULTIPROC_DIR set before any import)
    interactive: bool = True  # serve the interactive lane (workers of the inference queue)


class WorkerRuntime:
    """What a task needs in this process. Created on first use in the child, never before the fork,
    because ONNX Runtime sessions (and CUDA contexts) do not survive ``fork``."""

    def __init__(self, settings: LeptonSettings, options: WorkerOptions) -> None:
        self.settings = settings
        self.options = options
        self.redis = connect_with(settings)
        self.jobs = JobStore(self.redis, ttl_s=settings.job_ttl_s)
        self.bulk_data = BulkData(DataStore(settings.data_store, endpoint_url=settings.s3_endpoint_url))
        self.dead_letters = DeadLetterStore(self.redis, ttl_s=settings.job_ttl_s)
        self.deliveries = DeliveryCounter(self.redis, ttl_s=settings.job_ttl_s)
        self.training_runs = TrainingRuns(self.redis, ttl_s=settings.job_ttl_s)
        self.audit = AuditTrail(self.redis, max_entries=settings.audit_max_entries)
        self.registry = open_registry(settings)
        self.engines = EngineCache(self.registry, self._make_engine, memory_budget_mb=settings.model_memory_budget_mb)
        self.scheduler = LaneScheduler(bulk_min_share=settings.bulk_min_share)
        self.interactive: InteractiveConsumer | None = None
        self.follower = AliasFollower(
            self.redis, self.registry, self.engines, list(options.warm), worker=options.name, metrics=options.metrics
        )

    def bulk_turn(self) -> AbstractContextManager[Any]:
        """A turn of the bulk lane on this process's model (one ONNX Runtime batch of a chunk or large request)."""
        return self.scheduler.turn("bulk")

    def bulk_policy(self) -> BatchPolicy:
        """Bulk batches in the bulk lane's turns; shorter ones while interactive requests come to this process,
        so that one waits for a short batch at most. Under interactive overload (bulk pressed toward its minimum
        share) a chunk runs batches twice as long: its few turns do more bulk work each (requests queue anyway).
        bench/mixed.py, overload: short batches left bulk at 0.199x of its rate alone, full ones gave 0.26x but
        cost a tenth of the interactive rate, twice as long gave 0.31x with micro-batching still 4.7x."""
        if not self.scheduler.interactive_active(within_s=INTERACTIVE_ACTIVE_WINDOW_S):
            return BatchPolicy(self.bulk_turn, None)
        tokens = self.settings.bulk_batch_tokens_beside_interactive
        return BatchPolicy(self.bulk_turn, 2 * tokens if self.scheduler.bulk_pressed() else tokens)

    def start_interactive(self, answers: Any, events: Callable[[], BatchEvents] | None = None) -> None:
        """Serve the interactive lane from a thread of this process; ``answers`` gives the thread its result
        backend (Celery's are per thread), ``events`` what tells Flower of each batch."""
        if not self.options.interactive or self.interactive is not None:
            return
        observer = None
        if self.options.metrics:
            from lepton_runtime.monitoring.metrics import LaneMetrics

            observer = LaneMetrics()
        settings = self.settings
        options = LaneOptions(
            batch_wait_ms=settings.batch_wait_ms,
            max_batch_requests=settings.max_batch_requests,
            claim_after_s=settings.interactive_claim_after_s,
            max_deliveries=settings.max_deliveries,
            weights=dict(settings.tenant_weights),
            process_rank=process_rank(),
            ready=lambda: self.follower.ready,
        )
        self.interactive = InteractiveConsumer(
            InteractiveLane(self.redis), self.engines, self.scheduler, answers, options,
            consumer=f"{self.options.name}:{os.getpid()}", observer=observer, dead_letters=self.dead_letters,
            events=events,
        )  # fmt: skip
        self.interactive.start()

    def stop_interactive(self) -> None:
        if self.interactive is not None:
            self.interactive.stop()
            self.interactive = None
        self.follower.stop()

    def _make_engine(self, path: str) -> Engine:
        engine = Engine(
            path,
            device=self.options.device,
            intra_op_threads=self.options.intra_op_threads,
            max_batch_tokens=self.settings.max_batch_tokens,
            max_items=self.settings.max_items,
            max_text_chars=self.settings.max_text_chars,
        )
        if self.options.metrics:
            from lepton_runtime.monitoring.metrics import EngineMetrics

            engine.observer = EngineMetrics(engine.model.name, engine.model.version, engine.task.name)
            engine.observer.loaded(engine.load_time_s)
        return engine

    def warm(self) -> None:
        """Load (and run once) every model to warm, then say this process is ready."""
        for reference in self.options.warm:
            try:
                self.engines.get(reference)
            except LeptonError as error:
                if self.options.device == "cuda":
                    raise  # a CUDA worker that cannot run its model must not pretend to be ready
                logger.warning("could not warm %s: %s", reference, error)
        with self.redis.pipeline() as pipe:
            pipe.rpush(worker_ready_key(self.options.name), os.getpid())
            pipe.expire(worker_ready_key(self.options.name), READY_TTL_S)
            pipe.execute()


_configured: tuple[LeptonSettings, WorkerOptions] | None = None
_runtime: WorkerRuntime | None = None
_runtime_pid: int | None = None


def configure(settings: LeptonSettings, options: WorkerOptions) -> None:
    """Record the worker's settings in the parent; each child builds its runtime from them."""
    global _configured, _runtime
    _configured, _runtime = (settings, options), None


def is_built() -> bool:
    """Whether this process has built its runtime (stopping one never builds it)."""
    return _runtime is not None and _runtime_pid == os.getpid()


def metrics_on() -> bool:
    return bool(_configured and _configured[1].metrics)


def process_rank() -> int:
    """This process's place among its worker's pool processes (0: the first, or the only one)."""
    import billiard.process

    return int(getattr(billiard.process.current_process(), "index", 0) or 0)


def pool_kind() -> str:
    return _configured[1].pool if _configured else "prefork"


def current() -> WorkerRuntime:
    """This process's runtime, built on first use, and built again in a process forked after that
    (the main process may build one to report a hard time limit; its pool processes need their own)."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        if _configured is None:
            raise RuntimeError("the worker runtime is not configured; start workers with `lepton worker`")
        _runtime, _runtime_pid = WorkerRuntime(*_configured), os.getpid()
    return _runtime


def pool_shape(device: str, concurrency: int | None, threads: int | None) -> tuple[int, int]:
    """(processes, ONNX Runtime threads per process) with processes x threads <= cores unless both are given.

    On CPU the default is one single-threaded process per core: bench/queue.py measured it faster
    than one process with all the threads (bench/results/queue.md). On CUDA, one process.
    """
    cores = available_cores()
    if concurrency is None:
        concurrency = 1 if device == "cuda" else max(1, cores // (threads or 1))
    if threads is None:
        threads = max(1, cores // concurrency)
    return concurrency, threads
