"""The one training loop: every trainable task runs through it, enters bf16 autocast when asked (seen from inside
the forward pass), stays in fp32 on the CPU by default, and refuses a precision it does not know."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.training import TrainingConfig, fine_tune
from lepton_runtime.training.entities import fine_tune_entities
from lepton_runtime.training.finetune import TRAINING_METRICS_FILE
from lepton_runtime.training.loop import length_grouped_batches
from tests.lepton_runtime.training.test_entities import synthetic

pytestmark = pytest.mark.slow


def train_classifier(data: LabelledTexts, base: Path, out: Path, config: TrainingConfig) -> Any:
    sample = LabelledTexts(data.texts[:200], data.labels[:200] if data.labels else None, data.source)
    return fine_tune(sample, base, out, config)


def train_entities(data: LabelledTexts, base: Path, out: Path, config: TrainingConfig) -> Any:
    return fine_tune_entities(synthetic(120, seed=3), base, out, config, validation=synthetic(30, seed=4))


# Every trainable task: a fifth is tested by adding it here.
TRAINABLE_TASKS: dict[str, Callable[[LabelledTexts, Path, Path, TrainingConfig], Any]] = {
    "text-classification": train_classifier,
    "token-classification": train_entities,
}


@pytest.mark.parametrize("task", sorted(TRAINABLE_TASKS))
def test_each_trainable_task_enters_bf16_autocast_when_asked(
    task: str, tiny_base: Path, banking: LabelledTexts, tmp_path: Path
) -> None:
    config = TrainingConfig(epochs=1, batch_size=32, max_length=32, device="cpu", precision="bf16")
    result = TRAINABLE_TASKS[task](banking, tiny_base, tmp_path, config)
    steps = sum(1 for _ in length_grouped_batches([0] * result.train_size, config.batch_size, config.seed + 1))
    assert result.precision == "bf16 autocast"
    assert result.autocast_steps == steps > 0, "every step's forward pass should run inside autocast"
    assert json.loads((tmp_path / TRAINING_METRICS_FILE).read_text())["training_precision"] == "bf16 autocast"


@pytest.mark.parametrize("task", sorted(TRAINABLE_TASKS))
def test_each_trainable_task_trains_in_fp32_on_the_cpu_by_default(
    task: str, tiny_base: Path, banking: LabelledTexts, tmp_path: Path
) -> None:
    config = TrainingConfig(epochs=1, batch_size=32, max_length=32, device="cpu")
    result = TRAINABLE_TASKS[task](banking, tiny_base, tmp_path, config)
    assert result.precision == "fp32" and result.autocast_steps == 0
    assert result.best_epoch == 1 and len(result.epochs) == 1


def test_an_unknown_precision_is_refused_naming_the_choices(
    tiny_base: Path, banking: LabelledTexts, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="precision: 'fp8' is not one of auto, fp32, bf16, fp16"):
        train_classifier(banking, tiny_base, tmp_path, TrainingConfig(epochs=1, device="cpu", precision="fp8"))
