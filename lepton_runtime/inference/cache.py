"""Engines kept loaded in one process: least recently used first out when a memory budget is exceeded."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from lepton_runtime.errors import ModelIntegrityError
from lepton_runtime.inference.engine import Engine
from lepton_runtime.registry import ModelRegistry, ModelVersion

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass
class CachedEngine:
    engine: Engine
    memory_mb: float
    content_sha256: str


class EngineCache:
    """Loaded engines by exact version (``name@N``), bounded by a memory budget in MiB.

    The memory of an engine is what the process grew by while loading it (at least its ONNX
    file's size). When adding one would pass the budget, the least recently used go first; the
    engine asked for is always kept, even alone over the budget.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        make_engine: Callable[[str], Engine],
        *,
        memory_budget_mb: float,
        on_load: Callable[[str, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.make_engine = make_engine
        self.memory_budget_mb = memory_budget_mb
        self.on_load = on_load
        self._engines: OrderedDict[str, CachedEngine] = OrderedDict()
        self._process = psutil.Process(os.getpid())
        # a worker process asks from two threads (its task and its interactive lane): one load at a time
        self._lock = threading.RLock()

    def get(self, reference: str, *, content_sha256: str | None = None) -> Engine:
        """The engine of ``reference`` (loaded and warmed on first use); checks the version's identity."""
        with self._lock:
            return self._get(reference, content_sha256)

    def _get(self, reference: str, content_sha256: str | None) -> Engine:
        cached = self._engines.get(reference)  # an exact ``name@N`` never changes: no registry read
        if cached is not None and (not content_sha256 or cached.content_sha256 == content_sha256):
            self._engines.move_to_end(reference)
            return cached.engine
        version = self.registry.resolve(reference)
        if content_sha256 and version.manifest.content_sha256 != content_sha256:
            raise ModelIntegrityError(
                f"{version.reference} on this worker is not the version the job was submitted for "
                f"(content sha256 {version.manifest.content_sha256[:12]}…, job {content_sha256[:12]}…); "
                "the registries of producer and worker differ: share one LEPTON_MODEL_DIR"
            )
        key = version.reference
        if key in self._engines:
            self._engines.move_to_end(key)
            return self._engines[key].engine
        rss_before = self._process.memory_info().rss
        started = time.perf_counter()
        engine = self._load(version)
        load_s = time.perf_counter() - started
        grown_mb = (self._process.memory_info().rss - rss_before) / _MIB
        file_mb = (version.path / engine.model.onnx_file).stat().st_size / _MIB
        self._engines[key] = CachedEngine(engine, max(grown_mb, file_mb), version.manifest.content_sha256)
        logger.info(
            "loaded %s (%s) in %.2f s, %.0f MiB", key, engine.provenance.variant, load_s, max(grown_mb, file_mb)
        )
        if self.on_load:
            self.on_load(key, load_s)
        self._evict(keep=key)
        return engine

    def _load(self, version: ModelVersion) -> Engine:
        """The engine of ``version`` from this host's copy of its files; a copy that fails verification at load
        (changed on disk since it was fetched) is fetched once more where the registry keeps copies."""
        try:
            return self.make_engine(str(self.registry.local_copy(version).path))
        except ModelIntegrityError as error:
            if not self.registry.discard_local_copy(version):
                raise
            logger.warning("%s: this host's copy failed verification (%s); fetching it again", version.reference, error)
            return self.make_engine(str(self.registry.local_copy(version).path))

    @property
    def memory_mb(self) -> float:
        return sum(cached.memory_mb for cached in self._engines.values())

    def loaded(self) -> list[str]:
        return list(self._engines)

    def _evict(self, keep: str) -> None:
        while self.memory_mb > self.memory_budget_mb and len(self._engines) > 1:
            oldest = next(key for key in self._engines if key != keep)
            evicted = self._engines.pop(oldest)
            self.registry.release_local_copy(oldest)
            logger.info(
                "evicted %s (%.0f MiB) to stay within %.0f MiB", oldest, evicted.memory_mb, self.memory_budget_mb
            )
