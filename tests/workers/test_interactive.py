"""The interactive lane end to end: requests of many callers batched together, a batch the model fails on split
until the failing request is alone, deadlines shed, a request that kills its process claimed and isolated."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import redis
from celery import Celery
from onnx import helper, numpy_helper
from tokenizers import Tokenizer

from lepton_runtime.errors import ExpiredError, InferenceError, PoisonMessageError
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import celery_config
from lepton_runtime.jobs.lanes import InteractiveLane
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from producer.client import DEADLINE_GRACE_S
from tests.queue_fixtures import free_port
from tests.workers.faults import POISON
from tests.workers.test_metrics import scrape, total
from workers.execution import run_requests
from workers.interactive import InteractiveConsumer, LaneOptions
from workers.processes import WorkerProcess
from workers.scheduler import LaneScheduler

# Token ids at or above this make the model below fail at run time (ONNX Runtime's Gather refuses them).
FAILING_FROM_TOKEN_ID = 29_500


def model_that_fails_on_a_marker(published: ModelVersion, directory: Path) -> tuple[Path, str]:
    """The tiny model with a probe added to its graph: a Gather over a table of FAILING_FROM_TOKEN_ID rows, of
    every input id, added (as zeros) to the logits. A text with a rarer token makes ONNX Runtime fail."""
    directory.mkdir()
    fp32 = published.manifest.variants["fp32"].file
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(published.path / name, directory / name)
    graph_model = onnx.load(str(published.path / fp32))
    graph = graph_model.graph
    for node in graph.node:
        node.output[:] = ["logits_unprobed" if out == "logits" else out for out in node.output]
    graph.initializer.append(numpy_helper.from_array(np.zeros((FAILING_FROM_TOKEN_ID, 1), np.float32), "probe_table"))
    graph.node.extend([
        helper.make_node("Gather", ["probe_table", "input_ids"], ["probe"], axis=0),
        helper.make_node("ReduceMax", ["probe"], ["probe_max"], axes=[1], keepdims=0),
        helper.make_node("Add", ["logits_unprobed", "probe_max"], ["logits"]),
    ])  # fmt: skip
    onnx.save(graph_model, str(directory / "model.onnx"))
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    marker = next(
        word
        for token_id in range(FAILING_FROM_TOKEN_ID, tokenizer.get_vocab_size())
        if (word := tokenizer.id_to_token(token_id)) and not word.startswith("##")
        and max(tokenizer.encode(word).ids) >= FAILING_FROM_TOKEN_ID
    )  # fmt: skip
    return directory, marker


def test_a_batch_the_model_fails_on_is_split_until_the_failing_request_is_alone(
    published: ModelVersion, tmp_path: Path
) -> None:
    directory, marker = model_that_fails_on_a_marker(published, tmp_path / "failing")
    engine = Engine(directory, intra_op_threads=1)
    with pytest.raises(Exception, match="out of"):
        engine.classify([f"my card {marker}"])
    requests = [["where is my card?"], ["top up failed", ""], [f"my card {marker}"], ["how do I pay?"]]
    answers = run_requests(engine, requests)
    assert isinstance(answers[2], InferenceError) and "the requests batched with it were answered" in str(answers[2])
    alone = [engine.classify(texts, errors="return") for texts in (["where is my card?"], ["how do I pay?"])]
    assert answers[0]["predictions"][0]["label"] == alone[0][0].label
    assert answers[3]["predictions"][0]["score"] == pytest.approx(alone[1][0].score)
    assert answers[1]["predictions"][1]["error"]["code"] == "invalid_input", "a bad text fails only its item"
    assert "texts[1]" in answers[1]["predictions"][1]["error"]["message"], "indexed within its own request"


def test_the_consumer_answers_each_request_of_a_failing_batch_where_its_client_waits(
    published: ModelVersion, tmp_path: Path, queue_settings: LeptonSettings, redis_client: redis.Redis
) -> None:
    directory, marker = model_that_fails_on_a_marker(published, tmp_path / "failing")
    registry = ModelRegistry(published.path.parent.parent)
    engines = EngineCache(registry, lambda _: Engine(directory, intra_op_threads=1), memory_budget_mb=1024)
    app = Celery("test-interactive", set_as_current=False)
    app.conf.update(celery_config(queue_settings))
    consumer = InteractiveConsumer(
        InteractiveLane(redis_client), engines, LaneScheduler(), lambda: app.backend, LaneOptions(), "test-consumer"
    )
    with LeptonClient(queue_settings) as client:
        jobs = [client.classify([text], model="tiny@1") for text in ("fine", f"lost {marker}", "card", "pin")]
        served = 0
        while served < len(jobs):
            served += consumer.step()
        assert served == 4
        labels = [job.wait(5) for job in (jobs[0], jobs[2], jobs[3])]
        assert all(len(answer) == 1 and hasattr(answer[0], "label") for answer in labels)
        with pytest.raises(InferenceError, match="failed at run time"):
            jobs[1].wait(5)
    assert InteractiveLane(redis_client).depths() == {"default": 0}, "every request acknowledged and deleted"


@pytest.mark.slow
def test_requests_of_many_clients_run_in_few_batches_and_deadlines_shed_load(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings, banking: object, published: ModelVersion
) -> None:
    texts = [f"where is my card number {i}?" for i in range(24)]
    with LeptonClient(queue_settings) as client:
        # admitted while no worker runs: they wait together, as they do behind a busy worker
        jobs = [client.classify([text], model="tiny", tenant=f"t{i % 3}") for i, text in enumerate(texts)]
        late = client.classify(["too late"], model="tiny", deadline_s=0.001)
        port = free_port()
        start_worker(extra=["--metrics-port", str(port)])
        answers = [job.wait(60)[0] for job in jobs]
        with pytest.raises(ExpiredError, match="deadline passed"):
            late.wait(60)
    expected = Engine(published.path, intra_op_threads=1).classify(texts)
    assert [a.label for a in answers] == [e.label for e in expected]  # type: ignore[union-attr]
    samples = scrape(port)
    batches = total(samples, "lepton_lane_batch_requests_count")
    assert total(samples, "lepton_lane_batch_requests_sum") == 25
    assert batches <= 8, f"25 waiting requests ran in {batches} batches: micro-batching should join them"
    assert total(samples, "lepton_lane_requests_total", outcome="expired") == 1
    assert sum(total(samples, "lepton_lane_requests_total", tenant=f"t{i}", outcome="answered") for i in range(3)) == 24
    assert total(samples, "lepton_lane_latency_seconds_count", tenant="t1") == 8


@pytest.mark.slow
def test_a_request_that_kills_its_process_is_answered_worker_lost_and_the_others_are_answered(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings
) -> None:
    worker = start_worker(
        concurrency=2,
        extra=["--include", "tests.workers.faults"],
        env={"LEPTON_INTERACTIVE_CLAIM_AFTER_S": "1", "LEPTON_MAX_DELIVERIES": "2"},
    )
    with LeptonClient(queue_settings) as client:
        poison = client.classify([POISON], model="tiny")
        others = [client.classify([f"card {i}"], model="tiny") for i in range(6)]
        answered = [job.wait(60) for job in others]
        with pytest.raises(PoisonMessageError, match="died before answering"):
            poison.wait(60)
        assert all(hasattr(answer[0], "label") for answer in answered)
        assert client.classify(["still serving"], model="tiny").wait(30)[0].label
    assert worker.process.poll() is None, "the worker replaced its killed processes and goes on"


def test_the_tenant_served_least_lately_by_weight_goes_first(redis_client: redis.Redis) -> None:
    from lepton_runtime.jobs.lanes import LaneRequest

    consumer = InteractiveConsumer(
        InteractiveLane(redis_client), None, LaneScheduler(), lambda: None,  # type: ignore[arg-type,return-value]
        LaneOptions(weights={"c": 4.0}), "test-consumer",
    )  # fmt: skip
    consumer._served = {"a": 100.0, "b": 10.0, "c": 100.0}
    waiting = [
        LaneRequest(id=f"r{i}", texts=["x"], model="tiny@1", sha256=None, tenant=t) for i, t in enumerate("abca")
    ]
    groups = consumer._fair_groups(waiting)
    assert [[request.id for request in group] for group in groups] == [["r1"], ["r2"], ["r0", "r3"]]


def test_a_tenant_served_far_more_than_the_others_is_read_one_request_per_batch(redis_client: redis.Redis) -> None:
    consumer = consumer_of(InteractiveLane(redis_client), LaneOptions(max_batch_requests=64))
    consumer._served = {"a": 100.0, "b": 10.0}
    assert consumer._read_counts(["a", "b"], 64) == {"a": 1, "b": 32}
    consumer._served = {"a": 100.0}  # alone, it is read in full batches
    assert consumer._read_counts(["a", "b"], 64) == {"a": 32, "b": 32}


def test_a_tenant_over_its_quota_is_served_by_the_first_process_only_while_another_sends(
    redis_client: redis.Redis,
) -> None:
    from lepton_runtime.errors import QuotaExceededError
    from lepton_runtime.jobs.lanes import LaneRequest

    lane = InteractiveLane(redis_client)
    first, second = (consumer_of(lane, LaneOptions(process_rank=rank)) for rank in (0, 1))

    def look() -> list[str]:
        for consumer in (first, second):
            consumer._tenants_read_at = float("-inf")  # look again now
            tenants = consumer._known_tenants()
        return tenants

    def request(tenant: str) -> LaneRequest:
        return LaneRequest(id=uuid.uuid4().hex, texts=["x"], model="tiny@1", sha256=None, tenant=tenant)

    lane.admit(request("a"), quota=1)
    lane.admit(request("b"), quota=100)
    look()  # the counters as they were
    with pytest.raises(QuotaExceededError):
        lane.admit(request("a"), quota=1)
    tenants = look()
    assert first._read_counts(tenants, 64).keys() == second._read_counts(tenants, 64).keys() == {"a", "b"}, (
        "b sent nothing since the last look: a is refused, but takes no process from anyone"
    )
    lane.admit(request("b"), quota=100)
    with pytest.raises(QuotaExceededError):
        lane.admit(request("a"), quota=1)
    tenants = look()
    assert first._read_counts(tenants, 64).keys() == {"a", "b"}
    assert second._read_counts(tenants, 64).keys() == {"b"}, "a, over its quota while b sends, waits for process 0"
    for consumer in (first, second):  # a second later, nobody sent or was refused: a is everyone's again
        consumer._moved_at = {key: at - 2.0 for key, at in consumer._moved_at.items()}
    tenants = look()
    assert second._read_counts(tenants, 64).keys() == {"a", "b"}


def consumer_of(lane: InteractiveLane, options: LaneOptions) -> InteractiveConsumer:
    """A consumer whose reading and ordering are tested (no engines, no answers)."""
    return InteractiveConsumer(
        lane, None, LaneScheduler(), lambda: None,  # type: ignore[arg-type,return-value]
        options, f"test-consumer-{options.process_rank}",
    )  # fmt: skip


def test_a_wait_on_a_request_with_a_deadline_ends_soon_after_it_even_when_no_one_answers(
    queue_settings: LeptonSettings,
) -> None:
    """No worker runs (or the request was lost in a failover): the client stops waiting at the deadline plus the
    lane's grace, with `expired`, not at its longer timeout."""
    with LeptonClient(queue_settings) as client:
        job = client.classify(["a fine film"], model="tiny", deadline_s=1)
        started = time.monotonic()
        with pytest.raises(ExpiredError, match="after its deadline"):
            job.wait(60)
        assert time.monotonic() - started < 1 + DEADLINE_GRACE_S + 2
