"""A training run, from the training queue or `lepton train` here, whatever its task: the rows it carries (read and
checked by its task's spec) go to the trainer of its task (a classifier's: export/training_run.py; an entity model's:
export/entity_run.py)."""

from __future__ import annotations

from collections.abc import Callable

from export.entity_run import train_queued_entities
from export.training_run import QueuedRun, TrainingRows, train_queued_classifier
from lepton_runtime.jobs.schemas import TrainingOutcome, TrainRequest
from lepton_runtime.task_names import TEXT_CLASSIFICATION, TOKEN_CLASSIFICATION

# A trainer: the rows that travelled with the run, its request, and where and how it runs
QueuedTrainer = Callable[[TrainingRows, TrainingRows, TrainRequest, QueuedRun], TrainingOutcome]


# The trainer of each trainable task (a task spec with ``trainable``; tests/export check that each has one)
QUEUED_TRAINERS: dict[str, QueuedTrainer] = {
    TEXT_CLASSIFICATION: train_queued_classifier,
    TOKEN_CLASSIFICATION: train_queued_entities,
}


def train_queued(
    train_rows: TrainingRows,
    validation_rows: TrainingRows,
    request: TrainRequest,
    run: QueuedRun,
) -> TrainingOutcome:
    """Fine-tune, export, publish and promote by the rule, as ``request.task``'s trainer does (the request's schema
    admits only the trainable tasks, each of which has a trainer: tests/export/test_queued_training.py)."""
    return QUEUED_TRAINERS[request.task](train_rows, validation_rows, request, run)
