"""What the tasks do, run as plain functions on a real Redis and the real tiny model: no broker, no worker."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import JobStore
from lepton_runtime.jobs.bulk_data import BulkData
from lepton_runtime.jobs.data_store import DataStore
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion
from tests.bulk_helpers import inline_job
from workers.execution import run_chunk, run_texts


def _engines(published: ModelVersion) -> EngineCache:
    registry = ModelRegistry(published.path.parent.parent)
    return EngineCache(registry, lambda path: Engine(path, intra_op_threads=1), memory_budget_mb=1024)


def _job(store: JobStore, tmp_path: Path, published: ModelVersion, texts: list[object], chunk_size: int) -> str:
    return inline_job(
        store, tmp_path, texts, chunk_size=chunk_size, model_version=published.reference,
        model_sha256=published.manifest.content_sha256,
    )  # fmt: skip


def test_a_chunk_is_classified_once_with_its_errors_in_place(
    redis_client: redis.Redis, published: ModelVersion, banking: LabelledTexts, tmp_path: Path
) -> None:
    store, engines, data = JobStore(redis_client), _engines(published), BulkData(DataStore(str(tmp_path)))
    texts: list[object] = [*banking.texts[:9], ""]  # an empty text fails alone
    job_id = _job(store, tmp_path, published, texts, chunk_size=5)
    sent: list[int] = []

    def send(job: str, chunks: list[int]) -> None:
        sent.extend(chunks)

    answers = [run_chunk(store, data, engines, job_id, chunk, send) for chunk in (0, 1)]
    assert [a["written"] for a in answers] == [True, True] and sum(a["errors"] for a in answers) == 1
    assert run_chunk(store, data, engines, job_id, 0, send) == {"job": job_id, "chunk": 0, "skipped": "done"}

    status = store.status(job_id)
    assert (status.state, status.done_texts, status.error_items, status.chunk_runs) == ("succeeded", 10, 1, 2)
    manifest = data.manifest(store, job_id)  # committed by the last chunk's run
    assert not Path(store.job_input(job_id)[0].location).exists(), "the texts written for it went with the commit"
    assert [part.rows for part in manifest.parts] == [5, 5] and manifest.details["model_version"] == published.reference
    rows = [json.loads(line) for line in data.rows(store, job_id)]
    assert [row["id"] for row in rows] == [str(i) for i in range(10)]
    assert rows[9]["error"]["code"] == "invalid_input" and "texts[" not in rows[9]["error"]["message"]
    expected = Engine(published.path, intra_op_threads=1).classify(banking.texts[:9])
    assert [row["label"] for row in rows[:9]] == [p.label for p in expected]
    assert [row["score"] for row in rows[:9]] == pytest.approx(
        [p.score for p in expected], abs=0.01
    )  # int8, other batches
    assert {row["model"]["version"] for row in rows[:9]} == {published.version}
    table = pq.read_table(status.output)  # the output folder is one dataset
    assert table.column("id").to_pylist() == [str(i) for i in range(10)]
    assert table.column("position").to_pylist() == list(range(10))


def test_commits_racing_on_a_succeeded_job_all_return_its_one_manifest(
    redis_client: redis.Redis, published: ModelVersion, tmp_path: Path
) -> None:
    """The last chunk's worker and a reader may commit at the same moment: both get the manifest, neither fails on
    the texts the other removed."""
    store, data = JobStore(redis_client), BulkData(DataStore(str(tmp_path)))
    job_id = _job(store, tmp_path, published, ["a card", "a refund", "a transfer"], chunk_size=1)
    for chunk in range(3):
        run_chunk(store, data, _engines(published), job_id, chunk, lambda job, chunks: None)
    status = store.status(job_id)
    (Path(status.output or "") / "_manifest.json").unlink()  # as if the last worker died before committing
    Path(store.job_input(job_id)[0].location).write_text("")  # and before removing the job's texts
    with ThreadPoolExecutor(8) as pool:
        manifests = list(pool.map(lambda _: data.commit(store, job_id), range(8)))
    assert len({manifest.to_json() for manifest in manifests}) == 1 and manifests[0].rows == 3


def test_a_redelivered_chunk_whose_part_stands_records_that_part(
    redis_client: redis.Redis, published: ModelVersion, tmp_path: Path
) -> None:
    """A worker killed after writing its part and before recording it: the next delivery keeps the part written."""
    store, data = JobStore(redis_client), BulkData(DataStore(str(tmp_path)))
    job_id = _job(store, tmp_path, published, ["a card", "a refund"], chunk_size=2)
    work = store.chunk_work(job_id, 0)
    first = data.write_part(work, pa.table({"id": ["0", "1"], "label": ["x", "y"]}))
    run_chunk(store, data, _engines(published), job_id, 0, lambda job, chunks: None)
    assert store.parts(job_id)[0] == first


def test_a_cancelled_job_runs_no_further_chunk(
    redis_client: redis.Redis, published: ModelVersion, tmp_path: Path
) -> None:
    store = JobStore(redis_client)
    job_id = _job(store, tmp_path, published, ["a fine card", "my transfer failed"], chunk_size=1)
    store.cancel(job_id)
    data = BulkData(DataStore(str(tmp_path)))
    skipped = run_chunk(store, data, _engines(published), job_id, 1, lambda job, chunks: None)
    assert skipped == {"job": job_id, "chunk": 1, "skipped": "cancelled"}
    assert store.chunk_runs(job_id) == {}


def test_a_few_texts_get_one_provenance_and_an_answer_each(published: ModelVersion) -> None:
    engine = Engine(published.path, intra_op_threads=1)
    answer = run_texts(engine, ["where is my new card?", 42, "my top-up was reverted"])
    assert answer["model"] == engine.provenance.as_dict()
    first, bad, last = answer["predictions"]
    assert first["label"] in {"problem", "question"} and "model" not in first
    assert bad["error"]["code"] == "invalid_input" and last["score"] == max(last["scores"].values())
