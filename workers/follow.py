"""Rolling model updates in each worker process: when an alias it serves moves, load and warm the version it names now
beside the old one, before requests for it come.

A thread per pool process reads the registry's change counter (lepton_runtime/registry/notices.py) every
POLL_INTERVAL_S, and resolves its aliases again when the counter moved, or every ALIAS_RECHECK_S in any case (a move
nobody told), then says which versions it holds warm: producers keep sending the old version until one does.
Producers send each request with the exact version they resolved, so nothing switches inside the worker: the old
version keeps answering what was sent for it (a bulk job keeps the version it was submitted with). Loading takes the
engine cache's lock, so a request for the new version that comes meanwhile waits for the load; none fails.

The same thread reports what the process holds every REPORT_INTERVAL_S (lepton_runtime/jobs/fleet_status.py), for
``lepton workers`` and the API's readiness.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import redis

from lepton_runtime.errors import LeptonError
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.jobs.fleet_status import REPORT_INTERVAL_S, ProcessStatus, forget, report
from lepton_runtime.registry import ModelReference, ModelRegistry
from lepton_runtime.registry.notices import ALIAS_RECHECK_S, mark_warm, registry_epoch

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0


class AliasFollower:
    """``start`` once the process is warm; ``stop`` before it ends. ``references`` are the aliases to follow
    (``name@alias`` or a bare name); exact ``name@N`` references never move and are left out."""

    def __init__(
        self,
        redis_client: redis.Redis,
        registry: ModelRegistry,
        engines: EngineCache,
        references: list[str],
        worker: str = "",
        metrics: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis_client
        self.registry = registry
        self.engines = engines
        self.references = [ref for ref in references if ModelReference.parse(ref).version is None]
        self.clock = clock
        self.worker = worker
        self.metrics = metrics  # the process serves Prometheus metrics: lepton_model_store_up too
        self._following: dict[str, str] = {}  # alias -> the version it named at the last look
        self._problems: dict[str, LeptonError] = {}  # alias -> why it could not be loaded at the last look
        self._reported_at = -REPORT_INTERVAL_S
        self._epoch: int | None = None
        self._checked_at = -ALIAS_RECHECK_S
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """Whether no alias followed failed to load at the last look for a reason that passes (the store down): else
        this process leaves one-text requests to the processes that have the model (the interactive consumer reads
        nothing meanwhile). A lasting fault (a corrupt model) keeps it serving: its requests fail at once, clearly."""
        return not any(error.transient for error in self._problems.values())

    def start(self) -> None:
        """Look once now (the process is not ready before it knows), then every POLL_INTERVAL_S in a thread."""
        with contextlib.suppress(redis.RedisError):
            self.step()
        self._thread = threading.Thread(target=self._loop, name="lepton-follow-aliases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(redis.RedisError):  # else the entry goes stale
            forget(self.redis, socket.gethostname(), os.getpid())

    def _loop(self) -> None:
        while not self._stopping.wait(POLL_INTERVAL_S):
            try:
                self.step()
                if self.clock() - self._reported_at >= REPORT_INTERVAL_S:
                    self.report()
            except (LeptonError, redis.RedisError) as error:
                logger.warning("following model aliases: %s; trying again in %.0f s", error, POLL_INTERVAL_S)
            except Exception:
                logger.exception("following model aliases: unexpected error (a bug)")

    def step(self) -> list[str]:
        """Look once: the exact versions loaded because an alias moved to them (usually none)."""
        epoch, now = registry_epoch(self.redis), self.clock()
        if epoch == self._epoch and now - self._checked_at < ALIAS_RECHECK_S and not self._problems:
            return []
        self._epoch, self._checked_at = epoch, now
        loaded = []
        for reference in self.references:
            try:
                version = self.registry.resolve(reference)
                self._following[reference] = version.reference
                if version.reference not in self.engines.loaded():
                    started = self.clock()
                    self.engines.get(version.reference, content_sha256=version.manifest.content_sha256)
                    took_s = self.clock() - started
                    logger.info("%s now names %s: loaded and warmed in %.2f s", reference, version.reference, took_s)
                    loaded.append(version.reference)
            except LeptonError as error:  # tried again at the next look; the fleet view says why meanwhile
                if reference not in self._problems:
                    logger.warning("%s cannot be loaded [%s]: %s", reference, error.code, error)
                self._problems[reference] = error
                continue
            self._problems.pop(reference, None)
            mark_warm(self.redis, version.reference)  # producers switch to it now (registry/notices.py)
        return loaded

    def report(self) -> ProcessStatus:
        """Tell the fleet what this process holds now."""
        status = ProcessStatus(
            host=socket.gethostname(), worker=self.worker, pid=os.getpid(), loaded=self.engines.loaded(),
            following=dict(self._following), cache_bytes=self.registry.cache_bytes(),
            store_error=self.registry.store_error, ready=self.ready,
            problems={alias: f"{error.code}: {error}" for alias, error in self._problems.items()},
        )  # fmt: skip
        report(self.redis, status)
        if self.metrics and self.registry.remote:
            from lepton_runtime.monitoring.metrics import MODEL_STORE_UP

            MODEL_STORE_UP.labels(str(status.pid)).set(0 if status.store_error else 1)
        self._reported_at = self.clock()
        return status
