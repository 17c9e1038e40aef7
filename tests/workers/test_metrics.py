"""A worker's /metrics over real work: exact counts and histograms summed over its pool processes, and the
queue depth and age that rise while a job waits and fall when it is done."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import free_port
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, found), value in samples.items() if sample == name and wanted <= found)


def test_metrics_count_a_bulk_job_and_a_request_exactly_across_pool_processes(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings, banking: LabelledTexts
) -> None:
    port = free_port()
    start_worker(concurrency=2, extra=["--metrics-port", str(port)])
    with LeptonClient(queue_settings) as client:
        assert client.submit_bulk(banking.texts[:300], model="tiny", chunk_size=64).wait(120).state == "succeeded"
        client.classify(["a fine film", ""], model="tiny").wait(30)
    samples = scrape(port)
    tiny = {"model": "tiny", "version": "1", "task": "text-classification"}
    assert total(samples, "lepton_texts_total", outcome="predicted", **tiny) == 301
    assert total(samples, "lepton_texts_total", outcome="invalid", **tiny) == 1
    batches = total(samples, "lepton_batches_total", **tiny)
    assert batches >= 6  # at least one per chunk and one for the request
    assert total(samples, "lepton_batch_size_texts_count", **tiny) == batches
    assert total(samples, "lepton_batch_size_texts_sum", **tiny) == 301
    assert total(samples, "lepton_batch_seconds_count", **tiny) == batches
    real, padded = (
        total(samples, "lepton_tokens_real_total", **tiny),
        total(samples, "lepton_tokens_padded_total", **tiny),
    )
    assert 0 < real <= padded and real / padded > 0.5, "length-sorted batches pad little"
    assert total(samples, "lepton_task_seconds_count", task="lepton.bulk.chunk") == 5
    assert total(samples, "lepton_task_seconds_count", task="lepton.classify") == 0, "one text: the interactive lane"
    assert total(samples, "lepton_lane_requests_total", lane="interactive", outcome="answered") == 1
    assert total(samples, "lepton_lane_texts_total", lane="interactive") == 2
    assert total(samples, "lepton_lane_latency_seconds_count", lane="bulk") == 5, "each chunk, sent to done"
    assert total(samples, "lepton_model_load_seconds_count", **tiny) == 2, "each pool process loads its own"
    resident = [value for (name, _), value in samples.items() if name == "lepton_process_resident_bytes"]
    assert len(resident) == 2 and all(value > 10_000_000 for value in resident)
    assert total(samples, "lepton_queue_depth", queue="lepton.inference") == 0


def test_metrics_count_failures_by_code(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings
) -> None:
    port = free_port()
    start_worker(extra=["--metrics-port", str(port)])
    with LeptonClient(queue_settings) as client:
        job = client.classify(["fine"], model="tiny")
        # a task sent by name with arguments no producer of ours sends: refused as invalid input
        bad = client.celery.send_task("lepton.classify", args=["not a list", "tiny@1"], queue="lepton.inference")
        bad.get(timeout=30, propagate=False)
        job.wait(30)
    assert total(scrape(port), "lepton_task_errors_total", task="lepton.classify", code="invalid_input") == 1


def test_queue_depth_and_age_rise_while_a_job_waits_and_fall_when_it_is_done(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings
) -> None:
    port = free_port()
    start_worker(extra=["-Q", "lepton.training", "--metrics-port", str(port)], warm=False)  # reports, runs nothing
    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk([f"text number {i}" for i in range(40)], model="tiny", chunk_size=4)
        waiting = scrape(port)
        # the job's window (LEPTON_BULK_WINDOW_CHUNKS, 4; this worker has one process): the rest wait in its record
        assert total(waiting, "lepton_queue_depth", queue="lepton.inference") == 4
        assert total(waiting, "lepton_queue_oldest_age_seconds", queue="lepton.inference") > 0
        start_worker()
        assert job.wait(120).state == "succeeded"
    done = scrape(port)
    assert total(done, "lepton_queue_depth", queue="lepton.inference") == 0
    assert total(done, "lepton_queue_oldest_age_seconds", queue="lepton.inference") == 0
