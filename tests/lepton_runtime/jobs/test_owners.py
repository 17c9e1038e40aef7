"""Whose work is whose, on a real Redis: the tenant recorded at submission of every kind of work, read back by id;
dead letters of it; the audit trail; the per-tenant bulk counters the metrics show."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, generate_latest

from lepton_runtime.constants import BULK_CHUNK_TASK, CLASSIFY_TASK, INFERENCE_QUEUE
from lepton_runtime.jobs import DeadLetterStore, JobStore, TrainingRuns, TrainRequest, new_dead_letter
from lepton_runtime.jobs.audit import AuditTrail
from lepton_runtime.jobs.keys import JobKeys, TrainingKeys, task_result_key
from lepton_runtime.jobs.lanes import InteractiveLane, LaneRequest
from lepton_runtime.jobs.owners import may_see, owner_of, record_request_owner
from lepton_runtime.monitoring.collectors import QueueCollector
from tests.bulk_helpers import inline_job
from tests.lepton_runtime.jobs.test_store import _complete, _create


def test_every_kind_of_work_is_owned_by_the_tenant_that_submitted_it(redis_client: redis.Redis, tmp_path: Path) -> None:
    jobs, runs = JobStore(redis_client), TrainingRuns(redis_client)
    job_id = _create(jobs, tmp_path, tenant="alpha")
    run_id, _ = runs.create(TrainRequest(name="m", source="t.jsonl"), [{"text": "a", "label": "b"}], tenant="beta")
    interactive = LaneRequest(id=uuid.uuid4().hex, texts=["x"], model="m@1", sha256=None, tenant="gamma")
    InteractiveLane(redis_client).admit(interactive, quota=10, owner_ttl_s=60)
    bulk_lane = uuid.uuid4().hex
    record_request_owner(redis_client, bulk_lane, "delta", 60)
    assert [owner_of(redis_client, i) for i in (job_id, run_id, interactive.id, bulk_lane)] == [
        "alpha", "beta", "gamma", "delta"
    ]  # fmt: skip
    assert jobs.status(job_id).tenant == "alpha" and runs.status(run_id).tenant == "beta"
    assert 0 < redis_client.ttl(f"lepton:owner:{interactive.id}") <= 60, "a request's owner goes with its answer"
    assert owner_of(redis_client, uuid.uuid4().hex) is None


def test_work_from_before_owners_is_the_default_tenants(redis_client: redis.Redis, tmp_path: Path) -> None:
    jobs, runs = JobStore(redis_client), TrainingRuns(redis_client)
    job_id = _create(jobs, tmp_path, tenant="alpha")
    run_id, _ = runs.create(TrainRequest(name="m", source="t.jsonl"), [{"text": "a", "label": "b"}], tenant="alpha")
    redis_client.hdel(JobKeys(job_id).record, "tenant")  # records as written before this change
    redis_client.hdel(TrainingKeys(run_id).record, "tenant")
    answered = uuid.uuid4().hex
    redis_client.set(task_result_key(answered), "{}")  # an answer stored before requests had owners
    redis_client.set(task_result_key(f"{job_id}.chunk0.abc"), "{}")  # a chunk task's result: never a request's
    assert [owner_of(redis_client, i) for i in (job_id, run_id, answered)] == ["default"] * 3
    assert jobs.status(job_id).tenant == "default"
    assert owner_of(redis_client, f"{job_id}.chunk0.abc") is None


def test_the_owner_and_the_operator_see_work_and_no_one_else() -> None:
    assert may_see("alpha", "alpha", "operator") and may_see("alpha", "operator", "operator")
    assert not may_see("alpha", "beta", "operator") and not may_see(None, "operator", "operator")


def test_lists_and_idempotency_keys_are_per_tenant(redis_client: redis.Redis, tmp_path: Path) -> None:
    from lepton_runtime.jobs.keys import tenant_scoped

    jobs = JobStore(redis_client)
    alpha = _create(jobs, tmp_path, tenant="alpha", idempotency_key_value=tenant_scoped("alpha", "nightly"))
    beta = _create(jobs, tmp_path, tenant="beta", idempotency_key_value=tenant_scoped("beta", "nightly"))
    assert alpha != beta, "one key, two tenants: two jobs"
    assert [s.id for s in jobs.list_jobs(tenant="alpha")] == [alpha]
    assert {s.id for s in jobs.list_jobs()} == {alpha, beta}
    assert tenant_scoped("default", "nightly") == "nightly", "the default tenant's keys are as before"
    assert tenant_scoped("default", "tenant:alpha:nightly") != tenant_scoped("alpha", "nightly")


def test_a_dead_letter_belongs_to_the_tenant_of_its_work(redis_client: redis.Redis, tmp_path: Path) -> None:
    jobs, letters = JobStore(redis_client), DeadLetterStore(redis_client)
    job_id = _create(jobs, tmp_path, tenant="alpha")
    request_id = uuid.uuid4().hex
    record_request_owner(redis_client, request_id, "beta", 60)
    common = {"queue": INFERENCE_QUEUE, "code": "internal_error", "message": "a bug", "attempts": 1}
    letters.add(new_dead_letter(id=f"{job_id}.chunk0.x", task=BULK_CHUNK_TASK, args=[job_id, 0], **common))
    letters.add(new_dead_letter(id=request_id, task=CLASSIFY_TASK, args=[["x"], "m@1", None], **common))
    letters.add(new_dead_letter(id="orphan", task=CLASSIFY_TASK, args=[], **common))
    assert {letter.id: letter.tenant for letter in letters.list()} == {
        f"{job_id}.chunk0.x": "alpha", request_id: "beta", "orphan": "default"
    }  # fmt: skip
    assert [letter.id for letter in letters.list(tenant="beta")] == [request_id]
    assert letters.tenant_of(request_id) == "beta" and letters.tenant_of("none") is None


def test_the_audit_trail_is_newest_first_filtered_and_bounded(redis_client: redis.Redis, tmp_path: Path) -> None:
    trail = AuditTrail(redis_client, max_entries=100)
    for i in range(1000):
        trail.record(tenant="alpha" if i % 2 else "beta", token="sha256:abc", action="promote", target=f"m@{i}")
    newest = trail.entries(limit=3)
    assert [entry.target for entry in newest] == ["m@999", "m@998", "m@997"]
    assert [entry.tenant for entry in trail.entries(tenant="beta", limit=2)] == ["beta", "beta"]
    assert redis_client.xlen("lepton:audit") < 300, "the oldest entries go (about max_entries are kept)"


def test_bulk_work_is_counted_per_tenant_for_the_metrics(redis_client: redis.Redis, tmp_path: Path) -> None:
    jobs = JobStore(redis_client)
    done = _create(jobs, tmp_path, count=4, chunk_size=2, tenant="alpha")
    for chunk in range(2):
        assert jobs.start_chunk(done, chunk) == "run" and _complete(jobs, done, chunk)
    failed = _create(jobs, tmp_path, count=2, chunk_size=2, tenant="alpha")
    jobs.start_chunk(failed, 0)
    jobs.fail_chunk(failed, 0, "internal_error", "a bug")
    jobs.cancel(_create(jobs, tmp_path, tenant="beta"))
    first = inline_job(jobs, tmp_path, ["x"], chunk_size=1, tenant="beta", idempotency_key_value="k")
    assert jobs.job_for_key("k") == first, "a repeated submission finds the first job, not another"
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(redis_client, strict=True))
    text = generate_latest(registry).decode()
    for line in (
        'lepton_bulk_jobs_total{event="submitted",tenant="alpha"} 2.0',
        'lepton_bulk_jobs_total{event="succeeded",tenant="alpha"} 1.0',
        'lepton_bulk_jobs_total{event="failed",tenant="alpha"} 1.0',
        'lepton_bulk_jobs_total{event="cancelled",tenant="beta"} 1.0',
        'lepton_bulk_jobs_total{event="submitted",tenant="beta"} 2.0',
        'lepton_bulk_texts_total{outcome="answered",tenant="alpha"} 4.0',
        'lepton_bulk_failed_chunks_total{tenant="alpha"} 1.0',
    ):
        assert line in text, (line, [x for x in text.splitlines() if "bulk" in x])
