"""A queued entity run reports its phases, and a cancel that comes during its export withdraws what it exported."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.entity_run import train_queued_entities
from export.training_run import QueuedRun
from lepton_runtime.errors import JobCancelledError
from lepton_runtime.jobs.schemas import TrainingProgress, TrainRequest
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.task_names import TOKEN_CLASSIFICATION
from tests.lepton_runtime.training.test_entities import synthetic


def rows(count: int, seed: int) -> list[dict[str, list[str]]]:
    tagged = synthetic(count, seed=seed)
    return [{"tokens": words, "tags": tags} for words, tags in zip(tagged.words, tagged.tags, strict=True)]


def test_a_cancel_during_the_export_withdraws_the_version_and_promotes_nothing(tiny_base: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    request = TrainRequest(
        name="ner", base=str(tiny_base), source="train.jsonl", validation_source="validation.jsonl",
        task=TOKEN_CLASSIFICATION, epochs=1, max_length=32,
    )  # fmt: skip
    phases: list[str] = []

    def heard(progress: TrainingProgress) -> None:
        if not phases or phases[-1] != progress.phase:
            phases.append(progress.phase)

    with pytest.raises(JobCancelledError, match="ner@1 was withdrawn"):
        run = QueuedRun(registry, tmp_path / "checkpoints", "run-1", on_progress=heard,
                        should_stop=lambda: "exporting" in phases)  # cancelled once exporting  # fmt: skip
        train_queued_entities(rows(60, seed=1), rows(20, seed=2), request, run)

    assert phases == ["loading", "training", "exporting"]
    assert registry.versions("ner") == []
    assert registry.aliases("ner") == {}
