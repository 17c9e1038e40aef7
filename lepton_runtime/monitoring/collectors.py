"""Metrics read at scrape time: queue depth and the age of the oldest waiting message (what autoscalers
such as KEDA need; Flower does not export them), and GPU memory and utilisation through NVML."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lepton_runtime.constants import KNOWN_QUEUES
from lepton_runtime.jobs.queues import oldest_enqueued_at, queue_depths


class QueueCollector(Collector):
    """``lepton_queue_depth`` and ``lepton_queue_oldest_age_seconds`` per queue, read from Redis per scrape.

    ``strict``: a Redis error propagates (the API answers 503) instead of leaving the figures out.
    """

    def __init__(self, client: redis.Redis, *, strict: bool = False) -> None:
        self.client = client
        self.strict = strict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("lepton_queue_depth", "Messages waiting in a queue.", labels=["queue"])
        age = GaugeMetricFamily(
            "lepton_queue_oldest_age_seconds", "Age of the oldest waiting message (0 when none).", labels=["queue"]
        )
        try:
            depths = queue_depths(self.client)
            now = time.time()
            for queue in KNOWN_QUEUES:
                depth.add_metric([queue], depths[queue])
                oldest = oldest_enqueued_at(self.client, queue)
                age.add_metric([queue], max(0.0, now - oldest) if oldest else 0.0)
        except redis.RedisError:
            if self.strict:
                raise
            return  # Redis down: no queue figures this scrape (the worker logs say why)
        yield depth
        yield age


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
