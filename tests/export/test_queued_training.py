"""Which tasks train: a task spec marked trainable has a trainer for queued runs and the training schema admits it;
a task that trains no model says so, naming the field, before any file is read."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from export.queued_training import QUEUED_TRAINERS
from lepton_runtime.errors import InvalidInputError
from lepton_runtime.jobs.schemas import TrainedTask
from lepton_runtime.tasks import SPECS


def test_every_trainable_task_has_a_queued_trainer_and_the_schema_admits_it() -> None:
    trainable = {name for name, spec in SPECS.items() if spec.trainable}
    assert trainable == set(QUEUED_TRAINERS) == set(get_args(TrainedTask))


@pytest.mark.parametrize("name", sorted(name for name, spec in SPECS.items() if not spec.trainable))
def test_a_task_that_trains_no_model_refuses_training_rows(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=f"task: {name} trains no model") as refused:
        SPECS[name].training_rows(tmp_path / "never-read.jsonl", None)
    assert refused.value.issues[0].field == "task"
