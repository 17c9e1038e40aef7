"""The tasks an engine can serve, by the name a manifest records; adding a task is one module here."""

from __future__ import annotations

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.inference.tasks.base import Task
from lepton_runtime.inference.tasks.classification import Classification
from lepton_runtime.inference.tasks.embedding import SentenceEmbedding
from lepton_runtime.inference.tasks.token_classification import TokenClassification

TASKS: dict[str, type[Task]] = {task.name: task for task in (Classification, SentenceEmbedding, TokenClassification)}


def task_class(name: str) -> type[Task]:
    """The task recorded as ``name`` in a manifest; an error naming the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise InvalidInputError(
            f"task {name!r} is unknown to this engine (known: {sorted(TASKS)}); upgrade lepton-runtime"
        ) from None


__all__ = ["TASKS", "Classification", "SentenceEmbedding", "Task", "TokenClassification", "task_class"]
