"""Metrics read at scrape time: queue depth and the age of the oldest waiting message (what autoscalers
such as KEDA need; Flower does not export them), the same per lane (interactive per tenant, bulk) with
the requests refused over a tenant's quota, and GPU memory and utilisation through NVML."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lepton_runtime.constants import INFERENCE_QUEUE, KNOWN_QUEUES
from lepton_runtime.jobs.keys import BULK_TENANT_COUNTERS_KEY
from lepton_runtime.jobs.lanes import InteractiveLane
from lepton_runtime.jobs.queues import oldest_enqueued_at, queue_depths

# The tenant label of the bulk lane's figures (its jobs are not per tenant yet).
BULK_TENANT_LABEL = "*"


class QueueCollector(Collector):
    """``lepton_queue_depth`` and ``lepton_queue_oldest_age_seconds`` per queue, read from Redis per scrape.

    ``strict``: a Redis error propagates (the API answers 503) instead of leaving the figures out.
    """

    def __init__(self, client: redis.Redis, *, strict: bool = False) -> None:
        self.client = client
        self.strict = strict

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        depth = GaugeMetricFamily("lepton_queue_depth", "Messages waiting in a queue.", labels=["queue"])
        age = GaugeMetricFamily(
            "lepton_queue_oldest_age_seconds", "Age of the oldest waiting message (0 when none).", labels=["queue"]
        )
        lane_depth = GaugeMetricFamily(
            "lepton_lane_depth",
            "Work waiting in a lane: interactive requests (waiting or running) per tenant, bulk messages.",
            labels=["lane", "tenant"],
        )
        lane_age = GaugeMetricFamily(
            "lepton_lane_oldest_age_seconds", "Age of the oldest work waiting in a lane (0 when none).", labels=["lane"]
        )
        rejected = CounterMetricFamily(
            "lepton_lane_rejected", "Interactive requests refused over their tenant's quota (429).", labels=["tenant"]
        )
        bulk_jobs = CounterMetricFamily(
            "lepton_bulk_jobs",
            "Bulk jobs per tenant: submitted, then succeeded, failed or cancelled.",
            labels=["tenant", "event"],
        )
        bulk_texts = CounterMetricFamily(
            "lepton_bulk_texts",
            "Texts of bulk jobs answered per tenant (outcome: answered, or invalid input).",
            labels=["tenant", "outcome"],
        )
        bulk_failures = CounterMetricFamily(
            "lepton_bulk_failed_chunks",
            "Chunks of bulk jobs that failed, per tenant (a retry may redo them).",
            labels=["tenant"],
        )
        try:
            depths = queue_depths(self.client)
            now = time.time()
            for queue in KNOWN_QUEUES:
                depth.add_metric([queue], depths[queue])
                oldest = oldest_enqueued_at(self.client, queue)
                age.add_metric([queue], max(0.0, now - oldest) if oldest else 0.0)
                if queue == INFERENCE_QUEUE:
                    lane_depth.add_metric(["bulk", BULK_TENANT_LABEL], depths[queue])
                    lane_age.add_metric(["bulk"], max(0.0, now - oldest) if oldest else 0.0)
            lane = InteractiveLane(self.client)
            tenants = lane.tenants()
            for tenant, waiting in lane.depths(tenants).items():
                lane_depth.add_metric(["interactive", tenant], waiting)
            oldest_request = lane.oldest_enqueued_at(tenants)
            lane_age.add_metric(["interactive"], max(0.0, now - oldest_request) if oldest_request else 0.0)
            for tenant, count in lane.rejected().items():
                rejected.add_metric([tenant], count)
            for field, value in self.client.hgetall(BULK_TENANT_COUNTERS_KEY).items():
                tenant, _, what = str(field).partition("|")
                if what.startswith("jobs_"):
                    bulk_jobs.add_metric([tenant, what.removeprefix("jobs_")], int(value))
                elif what in ("texts", "invalid_texts"):
                    bulk_texts.add_metric([tenant, "answered" if what == "texts" else "invalid"], int(value))
                elif what == "failed_chunks":
                    bulk_failures.add_metric([tenant], int(value))
        except redis.RedisError:
            if self.strict:
                raise
            return  # Redis down: no queue figures this scrape (the worker logs say why)
        yield depth
        yield age
        yield lane_depth
        yield lane_age
        yield rejected
        yield bulk_jobs
        yield bulk_texts
        yield bulk_failures


class GpuCollector(Collector):
    """``lepton_gpu_memory_used_bytes`` and ``lepton_gpu_utilization_ratio`` per GPU, when NVML answers."""

    def __init__(self) -> None:
        self.nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
        except Exception:  # no NVIDIA driver or no nvidia-ml-py: no GPU metrics, nothing else changes
            self.nvml = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.nvml is None:
            return
        memory = GaugeMetricFamily("lepton_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"])
        utilisation = GaugeMetricFamily("lepton_gpu_utilization_ratio", "GPU busy share (0-1).", labels=["gpu"])
        for index in range(self.nvml.nvmlDeviceGetCount()):
            handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            memory.add_metric([str(index)], self.nvml.nvmlDeviceGetMemoryInfo(handle).used)
            utilisation.add_metric([str(index)], self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100)
        yield memory
        yield utilisation


__all__ = ["GpuCollector", "QueueCollector"]
