"""``lepton train --method head``: a linear head on frozen mean-pooled embeddings, published with the encoder as
one text-classification graph that answers like the PyTorch model it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.head_run import train_head_and_publish
from lepton_runtime.inference import Engine
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry

pytestmark = pytest.mark.slow


def test_a_head_on_frozen_embeddings_is_published_as_one_classifier_graph(
    tmp_path: Path, tiny_sentence_encoder: Path, banking: LabelledTexts
) -> None:
    registry = ModelRegistry(tmp_path / "models")
    data = LabelledTexts(banking.texts[:1200], banking.labels[:1200] if banking.labels else None, banking.source)
    outcome = train_head_and_publish(data, name="quick", registry=registry, base=tiny_sentence_encoder, max_length=64)
    assert outcome.version == "quick@1" and outcome.promoted
    metrics = outcome.metrics
    assert metrics["method"] == "head" and metrics["train_size"] + metrics["validation_size"] == 1200
    assert 0.5 < metrics["validation_accuracy"] <= 1.0
    version = registry.resolve("quick@production")
    manifest = version.manifest
    assert manifest.task == "text-classification" and manifest.labels == ["problem", "question"]
    assert manifest.parity["max_abs_diff"] <= 1e-4 and "linear head" in (manifest.architecture or "")
    engine = Engine(version.path, variant="fp32")
    predictions = engine.classify(banking.texts[1200:1300])
    assert {p.label for p in predictions} <= {"problem", "question"} and predictions[0].model.version == 1
