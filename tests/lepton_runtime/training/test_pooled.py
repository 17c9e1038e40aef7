"""Full fine-tuning of a sentence-transformers base: the head sits on the mean-pooled embedding the base defines,
every weight trains, and the checkpoint exports as one graph that answers like the PyTorch model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.publish import export_checkpoint
from lepton_runtime.inference import Engine
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.training import TrainingConfig, fine_tune
from lepton_runtime.training.pooled import POOLED_HEAD_FILE

pytestmark = pytest.mark.slow


def test_a_sentence_encoder_is_fine_tuned_with_its_head_on_the_pooled_embedding(
    tmp_path: Path, tiny_sentence_encoder: Path, banking: LabelledTexts
) -> None:
    import torch
    from safetensors.torch import load_file

    data = LabelledTexts(banking.texts[:1200], banking.labels[:1200] if banking.labels else None, banking.source)
    checkpoint = tmp_path / "checkpoint"
    config = TrainingConfig(epochs=2, learning_rate=1e-3, max_length=64)
    result = fine_tune(data, tiny_sentence_encoder, checkpoint, config)
    assert result.validation_accuracy > 0.6, "the tiny encoder should learn something real"
    assert (checkpoint / POOLED_HEAD_FILE).is_file() and (checkpoint / "modules.json").is_file()
    trained = load_file(str(checkpoint / "model.safetensors"))
    base = load_file(str(tiny_sentence_encoder / "model.safetensors"))
    name = next(key for key in trained if key.endswith("encoder.layer.0.attention.self.query.weight"))
    assert not torch.equal(trained[name], base[name]), "full fine-tuning trains the encoder too"

    registry = ModelRegistry(tmp_path / "models")
    version = export_checkpoint(checkpoint, registry, "pooled", promote="production")
    manifest = version.manifest
    assert manifest.labels == ["problem", "question"]
    assert "mean pooling + linear head" in (manifest.architecture or "")
    assert manifest.parity["max_abs_diff"] <= 1e-4
    texts = banking.texts[1200:1400]
    predictions = Engine(version.path, variant="fp32").classify(texts)
    truth = banking.labels[1200:1400] if banking.labels else []
    accuracy = float(np.mean([p.label == label for p, label in zip(predictions, truth, strict=True)]))
    assert accuracy > 0.6, f"the published graph answers like the trained model ({accuracy:.2f})"
