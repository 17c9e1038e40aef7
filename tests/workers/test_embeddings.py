"""Embeddings through real workers: the client's ``embed`` (interactive and bulk lanes), bulk jobs written as .npy,
Parquet and JSON lines, ``/v1/embeddings`` answered to the real ``openai`` client, ``wrong_task`` refusals."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lepton_runtime.errors import WrongTaskError
from lepton_runtime.inference import Engine
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.prediction import Embedding, ItemError
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import RunningApi
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

TOKEN = "embed-token-0123456789"


def test_embed_answers_the_engines_vectors_in_both_lanes_and_bad_texts_in_place(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    published_embedding: ModelVersion,
    banking: LabelledTexts,
) -> None:
    start_worker(concurrency=2)
    texts = banking.texts[:40]
    expected = Engine(published_embedding.path, intra_op_threads=1).embed(texts)
    with LeptonClient(queue_settings) as client:
        few = client.embed(texts[:3], model="tiny-embed").vectors(60)  # the interactive lane
        many = client.embed(texts, model="tiny-embed@production", lane="bulk").wait(60)
        mixed = client.embed(["fine", "", "also fine"], model="tiny-embed").wait(60)
        with pytest.raises(WrongTaskError, match="tiny@1 is a text classifier"):
            client.embed(["hello"], model="tiny")
        with pytest.raises(WrongTaskError, match="tiny-embed@1 is an embedding model"):
            client.classify(["hello"], model="tiny-embed")
    assert few.dtype == np.float32 and np.allclose(few, expected[:3], atol=1e-5)
    assert all(isinstance(answer, Embedding) for answer in many)
    assert np.allclose(np.stack([np.asarray(a.vector) for a in many]), expected, atol=1e-5)
    assert many[0].model.model == "tiny-embed" and many[0].model.version == 1 and many[0].tokens > 2
    assert isinstance(mixed[1], ItemError) and mixed[1].code == "invalid_input"
    assert isinstance(mixed[0], Embedding) and isinstance(mixed[2], Embedding)


def test_a_bulk_embedding_job_writes_npy_parquet_and_json_lines_in_input_order(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    published_embedding: ModelVersion,
    banking: LabelledTexts,
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    start_worker(concurrency=2)
    texts = banking.texts[:700]
    source = tmp_path / "corpus.jsonl"
    rows = [{"id": f"q{i}", "text": text} for i, text in enumerate(texts)]
    rows[5]["text"] = ""  # one bad row fails alone
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    expected = Engine(published_embedding.path, intra_op_threads=1).embed([t for t in texts if t][:10])
    with LeptonClient(queue_settings) as client:
        job = client.submit_bulk(source, model="tiny-embed", chunk_size=64)
        assert job.wait(120).state == "succeeded"
        written = {
            suffix: client.write_results(job.id, tmp_path / f"out{suffix}") for suffix in (".npy", ".parquet", ".jsonl")
        }
    assert written == {".npy": 700, ".parquet": 700, ".jsonl": 700}

    array = np.load(tmp_path / "out.npy")
    assert array.shape == (700, 32) and array.dtype == np.float32
    assert np.isnan(array[5]).all() and np.allclose(array[:5], expected[:5], atol=1e-5)
    ids = [json.loads(line) for line in (tmp_path / "out.ids.jsonl").read_text().splitlines()]
    assert [entry["id"] for entry in ids] == [f"q{i}" for i in range(700)]
    assert ids[5]["error"]["code"] == "invalid_input" and "error" not in ids[4]

    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("id").to_pylist() == [f"q{i}" for i in range(700)]
    vectors = table.column("embedding").to_pylist()
    assert vectors[5] is None and table.column("error_code").to_pylist()[5] == "invalid_input"
    assert np.allclose(np.asarray(vectors[:5], dtype=np.float32), expected[:5], atol=1e-5)
    assert json.loads(table.schema.metadata[b"lepton.model"])["model"] == "tiny-embed"

    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [f"q{i}" for i in range(700)]
    assert np.allclose(lines[0]["embedding"], expected[0], atol=1e-5) and "vector" not in lines[0]
    assert not list(tmp_path.glob(".*partial"))


def test_the_openai_client_gets_embeddings_from_the_api_unchanged(
    start_worker: Callable[..., WorkerProcess],
    queue_env: dict[str, str],
    published_embedding: ModelVersion,
    tmp_path: Path,
) -> None:
    import openai

    start_worker()
    env = {**os.environ, **queue_env, "LEPTON_API_TOKENS": json.dumps([TOKEN])}
    api = RunningApi(env, tmp_path / "api.log", [])
    try:
        texts = ["where is my card?", "my card has not arrived", "how do I top up?"]
        expected = Engine(published_embedding.path, intra_op_threads=1).embed(texts)
        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{api.port}/v1", api_key=TOKEN)
        answer = sdk.embeddings.create(input=texts, model="tiny-embed")  # the SDK asks for base64 by default
        assert [item.index for item in answer.data] == [0, 1, 2]
        assert np.allclose(np.asarray([item.embedding for item in answer.data]), expected, atol=1e-5)
        assert answer.usage.prompt_tokens == answer.usage.total_tokens > 6 and answer.model == "tiny-embed"
        floats = sdk.embeddings.create(input="where is my card?", model="tiny-embed", encoding_format="float")
        assert np.allclose(floats.data[0].embedding, expected[0], atol=1e-5)

        headers = {"Authorization": f"Bearer {TOKEN}"}
        raw = api.http.post("/v1/embeddings", json={"input": ["hi"], "model": "tiny-embed"}, headers=headers)
        assert raw.status_code == 200 and raw.json()["provenance"]["version"] == 1
        refusals = {
            "wrong_task": {"input": ["hi"], "model": "tiny"},
            "invalid_input": {"input": [], "model": "tiny-embed"},
        }
        for code, body in refusals.items():
            refused = api.http.post("/v1/embeddings", json=body, headers=headers)
            assert refused.status_code == 422 and refused.json()["error"]["code"] == code, refused.text
        wrong_type = api.http.post("/v1/embeddings", json={"input": [1, 2], "model": "tiny-embed"}, headers=headers)
        assert wrong_type.status_code == 422 and "input" in wrong_type.text
        unauthorised = api.http.post("/v1/embeddings", json={"input": ["hi"], "model": "tiny-embed"})
        assert unauthorised.status_code == 401
        document = api.http.get("/openapi.json", headers=headers).json()
        assert "/v1/embeddings" in document["paths"]
    finally:
        api.stop()
