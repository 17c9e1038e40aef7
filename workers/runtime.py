"""One worker process's state (settings, Redis stores, loaded engines), built lazily after the fork."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Literal

from lepton_runtime.errors import LeptonError
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import DeadLetterStore, DeliveryCounter, JobStore, TrainingRuns, connect
from lepton_runtime.jobs.keys import worker_ready_key
from lepton_runtime.machine import available_cores
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.settings import LeptonSettings

logger = logging.getLogger(__name__)

# A worker's readiness list outlives a slow start, not a restart.
READY_TTL_S = 600


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


class WorkerRuntime:
    """What a task needs in this process. Created on first use in the child, never before the fork,
    because ONNX Runtime sessions (and CUDA contexts) do not survive ``fork``."""

    def __init__(self, settings: LeptonSettings, options: WorkerOptions) -> None:
        self.settings = settings
        self.options = options
        self.redis = connect(settings.broker_url)
        self.jobs = JobStore(self.redis, ttl_s=settings.job_ttl_s)
        self.dead_letters = DeadLetterStore(self.redis, ttl_s=settings.job_ttl_s)
        self.deliveries = DeliveryCounter(self.redis, ttl_s=settings.job_ttl_s)
        self.training_runs = TrainingRuns(self.redis, ttl_s=settings.job_ttl_s)
        self.registry = ModelRegistry(settings.model_dir)
        self.engines = EngineCache(self.registry, self._make_engine, memory_budget_mb=settings.model_memory_budget_mb)

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

            engine.observer = EngineMetrics(engine.model.name, engine.model.version)
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


def metrics_on() -> bool:
    return bool(_configured and _configured[1].metrics)


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
