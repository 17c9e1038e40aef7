"""The metrics every worker process records (prometheus-client multiprocess mode: one file per process,
summed at scrape time), and how the Engine and the tasks feed them."""

from __future__ import annotations

import os
import time

import psutil
from prometheus_client import Counter, Gauge, Histogram

MODEL_LABELS = ("model", "version")
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

TEXTS = Counter("lepton_texts", "Texts answered, by outcome (predicted or invalid).", [*MODEL_LABELS, "outcome"])
BATCHES = Counter("lepton_batches", "ONNX Runtime calls (batches).", MODEL_LABELS)
BATCH_SIZE = Histogram("lepton_batch_size_texts", "Texts per batch.", MODEL_LABELS, buckets=BATCH_SIZE_BUCKETS)
BATCH_SECONDS = Histogram("lepton_batch_seconds", "ONNX Runtime time per batch.", MODEL_LABELS, buckets=SECONDS_BUCKETS)
REAL_TOKENS = Counter("lepton_tokens_real", "Tokens of the texts themselves.", MODEL_LABELS)
PADDED_TOKENS = Counter(
    "lepton_tokens_padded", "Tokens computed, padding included (real / padded = padding efficiency).", MODEL_LABELS
)
MODEL_LOAD_SECONDS = Histogram(
    "lepton_model_load_seconds", "Time to verify, load and warm a model.", MODEL_LABELS, buckets=SECONDS_BUCKETS
)
TASK_SECONDS = Histogram("lepton_task_seconds", "Wall time of a task.", ["task"], buckets=SECONDS_BUCKETS)
TASK_ERRORS = Counter("lepton_task_errors", "Tasks that failed, by stable error code.", ["task", "code"])
RESIDENT_BYTES = Gauge(
    "lepton_process_resident_bytes", "Resident memory of a worker process.", ["pid"], multiprocess_mode="liveall"
)
CPU_SECONDS = Gauge(
    "lepton_process_cpu_seconds", "CPU time used by a worker process.", ["pid"], multiprocess_mode="liveall"
)


class EngineMetrics:
    """What one loaded model records: the Engine calls ``batch`` per ONNX Runtime call and ``texts`` per request."""

    def __init__(self, model: str, version: int | None) -> None:
        self.labels = (model, str(version if version is not None else "-"))

    def batch(self, rows: int, real_tokens: int, padded_tokens: int, seconds: float) -> None:
        BATCHES.labels(*self.labels).inc()
        BATCH_SIZE.labels(*self.labels).observe(rows)
        BATCH_SECONDS.labels(*self.labels).observe(seconds)
        REAL_TOKENS.labels(*self.labels).inc(real_tokens)
        PADDED_TOKENS.labels(*self.labels).inc(padded_tokens)

    def texts(self, predicted: int, invalid: int) -> None:
        if predicted:
            TEXTS.labels(*self.labels, "predicted").inc(predicted)
        if invalid:
            TEXTS.labels(*self.labels, "invalid").inc(invalid)

    def loaded(self, seconds: float) -> None:
        MODEL_LOAD_SECONDS.labels(*self.labels).observe(seconds)


class TaskTimer:
    """Task wall time and failures, and this process's resources after each task."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.process = psutil.Process()

    def start(self, task_id: str) -> None:
        self.started[task_id] = time.perf_counter()

    def finish(self, task_id: str, task: str) -> None:
        started = self.started.pop(task_id, None)
        if started is not None:
            TASK_SECONDS.labels(task).observe(time.perf_counter() - started)
        self.sample_resources()

    def failed(self, task: str, code: str) -> None:
        TASK_ERRORS.labels(task, code).inc()

    def sample_resources(self) -> None:
        pid = str(os.getpid())
        RESIDENT_BYTES.labels(pid).set(self.process.memory_info().rss)
        times = self.process.cpu_times()
        CPU_SECONDS.labels(pid).set(times.user + times.system)
