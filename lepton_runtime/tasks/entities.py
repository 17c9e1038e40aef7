"""Entity extraction (token classification): per text its entities as character spans (start, end, label, score,
text), from an entity model (``lepton train --task token-classification``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.labelled_data import read_tagged
from lepton_runtime.prediction import Entities, Entity, Provenance
from lepton_runtime.task_names import TOKEN_CLASSIFICATION
from lepton_runtime.tasks.spec import TaskSpec

if TYPE_CHECKING:
    import pyarrow as pa


class EntitiesSpec(TaskSpec):
    """Entities with ``text == texts[i][start:end]``; bulk rows ``{"id", "entities": [...], "model"}``."""

    name: ClassVar[str] = TOKEN_CLASSIFICATION
    model_task: ClassVar[str] = TOKEN_CLASSIFICATION
    command: ClassVar[str] = "entities"
    summary: ClassVar[str] = "Find the entities of texts with an entity model: character spans with their labels."
    route: ClassVar[str] = "/v1/entities"
    model_description: ClassVar[str] = "an entity extractor"
    example_texts: ClassVar[tuple[str, ...]] = ("Zoë Müller flew from São Paulo to Paris.",)
    example_model: ClassVar[str] = "ner"

    trainable: ClassVar[bool] = True
    result_fields: ClassVar[Mapping[str, Any]] = {"entities": list[dict[str, Any]]}  # start, end, label, score, text

    def read_training_rows(
        self, data: str | PathLike[str], validation: str | PathLike[str] | None, *, text_field: str,
        label_field: str,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
        """Rows ``{"tokens", "tags"}`` of CoNLL-style files (BIO tags, or character spans turned into tags); the
        validation sentences are required: they choose the best epoch, gate int8 and decide promotion."""
        if validation is None:
            raise InvalidInputError(
                "an entity model needs validation sentences (CoNLL-style JSONL): they choose the best epoch, gate int8"
                " and decide promotion; give validation=FILE (--validation FILE)",
                issues=[InputIssue("validation", "required for token-classification")],
            )

        def rows(path: str | PathLike[str]) -> list[dict[str, Any]]:
            tagged = read_tagged(Path(path))
            return [{"tokens": words, "tags": tags} for words, tags in zip(tagged.words, tagged.tags, strict=True)]

        return rows(data), rows(validation)

    def result_from_dict(self, item: dict[str, Any], provenance: Provenance) -> Entities:
        return Entities([Entity(**entity) for entity in item["entities"]], provenance)

    def cli_fields(self, result: Entities) -> dict[str, Any]:
        return {"entities": [entity.as_dict() for entity in result.entities]}

    def part_columns(self, answered: Sequence[Any]) -> dict[str, pa.Array]:
        import pyarrow as pa

        entity_type = pa.struct(
            [("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
             ("text", pa.string())]
        )  # fmt: skip
        entities = [
            [entity.as_dict() for entity in result.entities] if isinstance(result, Entities) else None
            for result in answered
        ]
        return {"entities": pa.array(entities, pa.list_(entity_type))}
