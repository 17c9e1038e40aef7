"""Fine-tuning on a real GPU: mixed precision on CUDA learns as the CPU run does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.training import TrainingConfig, fine_tune
from lepton_runtime.training.finetune import TRAINING_METRICS_FILE

pytestmark = [pytest.mark.slow, pytest.mark.gpu]


def test_mixed_precision_on_cuda_learns(tmp_path: Path, tiny_base: Path, banking: LabelledTexts) -> None:
    import torch

    sample = LabelledTexts(banking.texts[:1500], banking.labels[:1500] if banking.labels else None, banking.source)
    config = TrainingConfig(epochs=4, learning_rate=3e-3, head_learning_rate=3e-3, device="cuda")
    result = fine_tune(sample, tiny_base, tmp_path, config)
    metrics = json.loads((tmp_path / TRAINING_METRICS_FILE).read_text())
    assert metrics["device"] == "cuda"
    expected = "bf16 autocast" if torch.cuda.is_bf16_supported() else "fp16 autocast"
    assert metrics["training_precision"] == expected
    assert result.validation_accuracy > 0.6, "mixed precision must not stop the tiny model from learning"
