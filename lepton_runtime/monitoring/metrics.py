"""The metrics every worker process records (prometheus-client multiprocess mode: one file per process,
summed at scrape time), and how the Engine and the tasks feed them."""

from __future__ import annotations

import os
import time
from typing import Any

import psutil
from prometheus_client import Counter, Gauge, Histogram

from lepton_runtime.constants import BULK_CHUNK_TASK, CLASSIFY_TASK
from lepton_runtime.monitoring.collectors import BULK_TENANT_LABEL

MODEL_LABELS = ("model", "version", "task")
# Tasks of the bulk lane (their latency is the bulk lane's, labelled with collectors.BULK_TENANT_LABEL).
BULK_LANE_TASKS = (BULK_CHUNK_TASK, CLASSIFY_TASK)
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
ASKED_TEXTS = Counter(
    "lepton_asked_texts",
    "Texts answered per task asked of a model (a zero-shot request to an embedding model counts as zero-shot).",
    ["asked", *MODEL_LABELS],
)
TASK_SECONDS = Histogram("lepton_task_seconds", "Wall time of a task.", ["task"], buckets=SECONDS_BUCKETS)
TASK_ERRORS = Counter("lepton_task_errors", "Tasks that failed, by stable error code.", ["task", "code"])
LANE_REQUESTS = Counter(
    "lepton_lane_requests",
    "Requests of a lane answered, per tenant, by outcome (answered, expired, failed).",
    ["lane", "tenant", "outcome"],
)
LANE_TEXTS = Counter("lepton_lane_texts", "Texts of the requests a lane answered, per tenant.", ["lane", "tenant"])
LANE_LATENCY = Histogram(
    "lepton_lane_latency_seconds",
    "From admission to answer (the producer's clock to the worker's), per lane and tenant.",
    ["lane", "tenant"],
    buckets=SECONDS_BUCKETS,
)
LANE_BATCH_REQUESTS = Histogram(
    "lepton_lane_batch_requests", "Requests run together in one interactive batch (micro-batching).",
    ["lane"], buckets=BATCH_SIZE_BUCKETS,
)  # fmt: skip
LANE_TURN_WAIT = Histogram(
    "lepton_lane_turn_wait_seconds",
    "How long a lane waited in a worker process for the other lane's batch to end.",
    ["lane"],
    buckets=SECONDS_BUCKETS,
)
RESIDENT_BYTES = Gauge(
    "lepton_process_resident_bytes", "Resident memory of a worker process.", ["pid"], multiprocess_mode="liveall"
)
MODEL_STORE_UP = Gauge(
    "lepton_model_store_up",
    "1 while the model store (LEPTON_MODEL_STORE) answers a worker process, 0 while it serves its host's copies.",
    ["pid"],
    multiprocess_mode="liveall",
)
CPU_SECONDS = Gauge(
    "lepton_process_cpu_seconds", "CPU time used by a worker process.", ["pid"], multiprocess_mode="liveall"
)


class EngineMetrics:
    """What one loaded model records: the Engine calls ``batch`` per ONNX Runtime call and ``texts`` per request."""

    def __init__(self, model: str, version: int | None, task: str) -> None:
        self.labels = (model, str(version if version is not None else "-"), task)

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

    def asked(self, task: str, texts: int) -> None:
        """Texts answered for ``task`` (the model's own, or one served from its output, such as zero-shot)."""
        ASKED_TEXTS.labels(task, *self.labels).inc(texts)

    def loaded(self, seconds: float) -> None:
        MODEL_LOAD_SECONDS.labels(*self.labels).observe(seconds)


class LaneMetrics:
    """What the interactive consumer of one process records per request and per batch."""

    lane = "interactive"

    def answered(self, request: Any, outcome: str, latency_s: float) -> None:
        LANE_REQUESTS.labels(self.lane, request.tenant, outcome).inc()
        LANE_TEXTS.labels(self.lane, request.tenant).inc(len(request.texts))
        LANE_LATENCY.labels(self.lane, request.tenant).observe(max(0.0, latency_s))

    def batch(self, requests: int, turn_wait_s: float) -> None:
        LANE_BATCH_REQUESTS.labels(self.lane).observe(requests)
        LANE_TURN_WAIT.labels(self.lane).observe(turn_wait_s)


class TaskTimer:
    """Task wall time and failures, and this process's resources after each task."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.process = psutil.Process()

    def start(self, task_id: str) -> None:
        self.started[task_id] = time.perf_counter()

    def finish(self, task_id: str, task: str, enqueued_at: float | None = None) -> None:
        started = self.started.pop(task_id, None)
        if started is not None:
            TASK_SECONDS.labels(task).observe(time.perf_counter() - started)
        if enqueued_at is not None and task in BULK_LANE_TASKS:  # sent to done: the bulk lane's latency
            LANE_LATENCY.labels("bulk", BULK_TENANT_LABEL).observe(max(0.0, time.time() - enqueued_at))
        self.sample_resources()

    def failed(self, task: str, code: str) -> None:
        TASK_ERRORS.labels(task, code).inc()

    def sample_resources(self) -> None:
        pid = str(os.getpid())
        RESIDENT_BYTES.labels(pid).set(self.process.memory_info().rss)
        times = self.process.cpu_times()
        CPU_SECONDS.labels(pid).set(times.user + times.system)
