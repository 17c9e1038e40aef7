"""Every task a request can ask for, by name: one module each (a ``TaskSpec``) and one registration line below.

The Engine's ``infer``, the workers, bulk output, the client, the CLI commands and the HTTP routes all read
``SPECS``; a model's own task (its manifest's) is the spec of that name.
"""

from __future__ import annotations

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.tasks.classification import ClassificationSpec
from lepton_runtime.tasks.embedding import EmbeddingSpec
from lepton_runtime.tasks.entities import EntitiesSpec
from lepton_runtime.tasks.spec import Option, TaskSpec
from lepton_runtime.tasks.zero_shot import ZeroShotSpec

SPECS: dict[str, TaskSpec] = {
    spec.name: spec for spec in (ClassificationSpec(), EmbeddingSpec(), EntitiesSpec(), ZeroShotSpec())
}


def task_spec(name: str) -> TaskSpec:
    """The task called ``name``; an error naming the known tasks otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise InvalidInputError(f"task: {name!r} is not a task (tasks: {', '.join(sorted(SPECS))})") from None


__all__ = ["SPECS", "Option", "TaskSpec", "task_spec"]
