"""What the tasks do, run as plain functions on a real Redis and the real tiny model: no broker, no worker."""

from __future__ import annotations

import json

import redis

from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import JobStore
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion
from workers.execution import run_chunk, run_texts


def _engines(published: ModelVersion) -> EngineCache:
    registry = ModelRegistry(published.path.parent.parent)
    return EngineCache(registry, lambda path: Engine(path, intra_op_threads=1), memory_budget_mb=1024)


def _job(store: JobStore, published: ModelVersion, texts: list[object], chunk_size: int) -> str:
    items = ((str(i), text) for i, text in enumerate(texts))
    job_id, _ = store.create(
        items,  # type: ignore[arg-type]
        model="tiny",
        model_version=published.reference,
        model_sha256=published.manifest.content_sha256,
        source="<list>",
        chunk_size=chunk_size,
    )
    return job_id


def test_a_chunk_is_classified_once_with_its_errors_in_place(
    redis_client: redis.Redis, published: ModelVersion, banking: LabelledTexts
) -> None:
    store, engines = JobStore(redis_client), _engines(published)
    texts: list[object] = [*banking.texts[:9], ""]  # an empty text fails alone
    job_id = _job(store, published, texts, chunk_size=5)
    answers = [run_chunk(store, engines, job_id, chunk) for chunk in (0, 1)]
    assert [a["written"] for a in answers] == [True, True] and sum(a["errors"] for a in answers) == 1
    assert run_chunk(store, engines, job_id, 0) == {"job": job_id, "chunk": 0, "skipped": "done"}  # a redelivery

    status = store.status(job_id)
    assert (status.state, status.done_texts, status.error_items, status.chunk_runs) == ("succeeded", 10, 1, 2)
    rows = [json.loads(line) for line in store.results(job_id)]
    assert [row["id"] for row in rows] == [str(i) for i in range(10)]
    assert rows[9]["error"]["code"] == "invalid_input" and "texts[" not in rows[9]["error"]["message"]
    expected = Engine(published.path, intra_op_threads=1).classify(banking.texts[:9])
    assert [row["label"] for row in rows[:9]] == [p.label for p in expected]
    assert {row["model"]["version"] for row in rows[:9]} == {published.version}


def test_a_cancelled_job_runs_no_further_chunk(redis_client: redis.Redis, published: ModelVersion) -> None:
    store = JobStore(redis_client)
    job_id = _job(store, published, ["a fine card", "my transfer failed"], chunk_size=1)
    store.cancel(job_id)
    assert run_chunk(store, _engines(published), job_id, 1) == {"job": job_id, "chunk": 1, "skipped": "cancelled"}
    assert store.chunk_runs(job_id) == {}


def test_a_few_texts_get_one_provenance_and_an_answer_each(published: ModelVersion) -> None:
    engine = Engine(published.path, intra_op_threads=1)
    answer = run_texts(engine, ["where is my new card?", 42, "my top-up was reverted"])
    assert answer["model"] == engine.provenance.as_dict()
    first, bad, last = answer["predictions"]
    assert first["label"] in {"problem", "question"} and "model" not in first
    assert bad["error"]["code"] == "invalid_input" and last["score"] == max(last["scores"].values())
