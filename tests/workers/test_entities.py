"""Entities through real workers: the client's ``entities``, ``/v1/entities``, a bulk job to JSON lines and
Parquet, ``wrong_task`` refusals."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from lepton_runtime.errors import WrongTaskError
from lepton_runtime.inference import Engine
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.prediction import Entities, ItemError
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import RunningApi
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

TOKEN = "entities-token-0123456789"


def test_entities_come_back_like_the_engines_through_client_bulk_and_http(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    queue_env: dict[str, str],
    published_entities: ModelVersion,
    banking: LabelledTexts,
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    start_worker(concurrency=2)
    texts = banking.texts[:300]
    expected = Engine(published_entities.path, intra_op_threads=1).entities(texts)
    with LeptonClient(queue_settings) as client:
        answers = client.entities([*texts[:3], ""], model="tiny-ner").wait(60)
        with pytest.raises(WrongTaskError, match="tiny@1 is a text classifier, not an entity extractor"):
            client.entities(["Paris"], model="tiny")
        job = client.submit_bulk(texts, model="tiny-ner@production", chunk_size=64)
        assert job.wait(120).state == "succeeded"
        client.write_results(job.id, tmp_path / "out.jsonl")
        client.write_results(job.id, tmp_path / "out.parquet")
    assert all(isinstance(a, Entities) for a in answers[:3]) and isinstance(answers[3], ItemError)
    assert [[e.as_dict() for e in a.entities] for a in answers[:3] if isinstance(a, Entities)] == [
        [e.as_dict() for e in found] for found in expected[:3]
    ]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [str(i) for i in range(300)]
    assert [row["entities"] for row in rows] == [[e.as_dict() for e in found] for found in expected]
    assert rows[0]["model"]["model"] == "tiny-ner"
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("entities").to_pylist() == [row["entities"] for row in rows]

    env = {**os.environ, **queue_env, "LEPTON_API_TOKENS": json.dumps([TOKEN])}
    api = RunningApi(env, tmp_path / "api.log", [])
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = api.http.post("/v1/entities", json={"texts": [texts[0], ""], "model": "tiny-ner"}, headers=headers)
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert results[0]["entities"] == [e.as_dict() for e in expected[0]]
        assert results[1]["error"]["code"] == "invalid_input" and answer.json()["model"]["model"] == "tiny-ner"
        for body in ({"texts": ["Paris"], "model": "tiny"}, {"texts": ["Paris"], "model": "tiny-embed-missing"}):
            refused = api.http.post("/v1/entities", json=body, headers=headers)
            assert refused.status_code in {404, 422} and refused.json()["error"]["code"] in {
                "wrong_task",
                "unknown_model",
            }
        assert (
            api.http.post("/v1/entities", json={"texts": "Paris", "model": "tiny-ner"}, headers=headers).status_code
            == 422
        )
        assert "/v1/entities" in api.http.get("/openapi.json", headers=headers).json()["paths"]
    finally:
        api.stop()
