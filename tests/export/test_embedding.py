"""The embedding task's export on a real tiny sentence encoder and on the real all-MiniLM-L6-v2: vectors equal to
sentence-transformers', the parity and int8 gates, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from export.embedding import embedding_gate, retrieval_figures
from export.publish import export_checkpoint
from lepton_runtime import Engine
from lepton_runtime.datasets import BANKING77_DEV
from lepton_runtime.errors import ExportError, InvalidInputError, WrongTaskError
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.training import default_base_model

pytestmark = pytest.mark.slow


def test_the_manifest_records_the_task_the_pooling_and_the_parity_figures(published_embedding: ModelVersion) -> None:
    manifest = published_embedding.manifest
    assert manifest.task == "embedding" and manifest.labels == []
    assert manifest.max_sequence_length == 64  # the checkpoint's own max_seq_length
    assert manifest.source["pooling"] == "mean, L2-normalised"
    assert manifest.parity["min_cosine"] >= 0.9999
    assert {(c["batch_size"], c["sequence_length"]) for c in manifest.parity["cases"]} == {
        (b, s) for b in (1, 7, 64) for s in (8, 64, 128)
    }
    assert set(manifest.variants) == {"fp32"} and manifest.metrics["dimensions"] == 32


def test_engine_vectors_equal_sentence_transformers_in_input_order(
    published_embedding: ModelVersion, tiny_sentence_encoder: Path, banking: LabelledTexts
) -> None:
    from sentence_transformers import SentenceTransformer

    texts = banking.texts[:150] + [" ".join(banking.texts[i : i + 12]) for i in range(0, 120, 12)]  # some truncated
    reference = SentenceTransformer(str(tiny_sentence_encoder), device="cpu").encode(
        texts, normalize_embeddings=True, batch_size=32
    )
    engine = Engine(published_embedding.path)
    vectors = engine.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 32) and engine.dimensions == 32
    cosines = (vectors * reference).sum(axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosines.min() >= 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = np.stack([engine.embed([text])[0] for text in texts[:5]])  # batch of one = row of a large batch
    assert np.allclose(alone, vectors[:5], atol=1e-5)
    with pytest.raises(InvalidInputError, match=r"texts\[1\].*empty"):
        engine.embed(["fine", ""])


def test_a_classifier_is_not_asked_for_embeddings_nor_the_other_way_round(
    published: ModelVersion, published_embedding: ModelVersion
) -> None:
    with pytest.raises(WrongTaskError, match="is a text classifier, not an embedding model"):
        Engine(published.path).embed(["hello"])
    with pytest.raises(WrongTaskError, match=r"embed\(\) / POST /v1/embeddings"):
        Engine(published_embedding.path).classify(["hello"])


def test_int8_needs_two_thousand_golden_texts_and_a_sentence_transformers_directory(
    tmp_path: Path, tiny_sentence_encoder: Path, tiny_checkpoint: Path, golden_file: Path
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(InvalidInputError, match="at least 2000 real texts in --golden"):
        export_checkpoint(tiny_sentence_encoder, registry, "e", task="embedding", golden=golden_file)
    with pytest.raises(ExportError, match="not a sentence-transformers checkpoint"):
        export_checkpoint(tiny_checkpoint, registry, "e", task="embedding")
    with pytest.raises(InvalidInputError, match="task 'ner' cannot be exported"):
        export_checkpoint(tiny_checkpoint, registry, "e", task="ner")
    assert registry.list_models() == [] or not registry.versions("e")


def test_the_retrieval_gate_passes_close_vectors_and_fails_scrambled_neighbours() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 16)).astype(np.float32)
    close = reference + rng.normal(scale=0.01, size=reference.shape).astype(np.float32)
    assert embedding_gate(reference, close).passed
    noisy = reference + rng.normal(scale=0.5, size=reference.shape).astype(np.float32)
    result = embedding_gate(reference, noisy)
    assert not result.passed and "neighbour overlap" in result.reason
    figures = retrieval_figures(reference, reference, 10)
    assert figures.neighbour_overlap == 1.0 and figures.mean_cosine == pytest.approx(1.0)


@pytest.mark.skipif(
    os.environ.get("LEPTON_RELIABILITY_LONG") != "1", reason="the real 90 MB model: make soak (and bench/embeddings.py)"
)
def test_all_minilm_l6_v2_equals_sentence_transformers_on_two_thousand_real_texts(tmp_path: Path) -> None:
    """The acceptance figure: fp32 vectors of the real model against SentenceTransformer.encode, cosine >= 0.9999."""
    from sentence_transformers import SentenceTransformer

    lines = BANKING77_DEV.read_text().splitlines()  # the real queries shipped in the repository
    texts = [json.loads(line)["text"] for line in lines][:2000]
    assert len(texts) == 2000
    version = export_checkpoint(default_base_model(), ModelRegistry(tmp_path), "minilm", task="embedding")
    assert version.manifest.max_sequence_length == 256
    reference = SentenceTransformer(str(default_base_model()), device="cpu").encode(
        texts, normalize_embeddings=True, batch_size=64
    )
    vectors = Engine(version.path, intra_op_threads=os.cpu_count() or 1).embed(texts)
    cosines = (vectors * reference).sum(axis=1)
    assert vectors.shape == (2000, 384) and cosines.min() >= 0.9999, f"least cosine {cosines.min():.6f}"
