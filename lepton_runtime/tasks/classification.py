"""Text classification: a classifier's most probable label per text, its probability and every label's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lepton_runtime.labelled_data import check_trainable, read_labelled
from lepton_runtime.prediction import Prediction, Provenance
from lepton_runtime.task_names import TEXT_CLASSIFICATION
from lepton_runtime.tasks.spec import TaskSpec, VectorForm

if TYPE_CHECKING:
    import pyarrow as pa

# Decimals of a score in output lines (what a float32 model output holds)
SCORE_DECIMALS = 6


class ClassificationSpec(TaskSpec):
    """Labels of a classifier (``lepton train``, ``lepton export``); bulk rows ``{"id", "label", "score", "model"}``."""

    name: ClassVar[str] = TEXT_CLASSIFICATION
    model_task: ClassVar[str] = TEXT_CLASSIFICATION
    command: ClassVar[str] = "classify"
    summary: ClassVar[str] = "Classify texts with a classifier: the most probable label, its score, every label's."
    route: ClassVar[str] = "/v1/classify"
    model_description: ClassVar[str] = "a text classifier"

    trainable: ClassVar[bool] = True
    result_fields: ClassVar[Mapping[str, Any]] = {
        "label": str, "score": float, "scores": dict[str, float], "truncated": bool,
    }  # fmt: skip

    def read_training_rows(
        self, data: str | PathLike[str], validation: str | PathLike[str] | None, *, text_field: str,
        label_field: str,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
        """Rows ``{"text", "label"}`` of labelled files (JSONL, CSV, Parquet: labelled_data.read_labelled)."""

        def rows(path: str | PathLike[str], what: str) -> list[dict[str, Any]]:
            labelled = read_labelled(Path(path), text_field=text_field, label_field=label_field, require_labels=True)
            check_trainable(labelled, what=what)
            return [{"text": text, "label": label} for text, label in zip(labelled.texts, labelled.labels or [],
                                                                           strict=True)]  # fmt: skip

        return rows(data, "training data"), rows(validation, "validation data") if validation is not None else []

    def result_from_dict(self, item: dict[str, Any], provenance: Provenance) -> Prediction:
        return Prediction(model=provenance, **item)

    def cli_fields(self, result: Prediction) -> dict[str, Any]:
        return {"label": result.label, "score": round(result.score, 6)}

    def part_columns(self, answered: Sequence[Any]) -> dict[str, pa.Array]:
        import pyarrow as pa

        predictions = [result if isinstance(result, Prediction) else None for result in answered]
        return {
            "label": pa.array([p.label if p else None for p in predictions], pa.string()),
            "score": pa.array([p.score if p else None for p in predictions], pa.float64()),
        }

    def line_fields(self, columns: pa.RecordBatch, vectors: VectorForm) -> list[dict[str, Any]]:
        labels, scores = columns.column("label").to_pylist(), columns.column("score").to_pylist()
        return [
            {"label": label, "score": round(score, SCORE_DECIMALS) if score is not None else None}
            for label, score in zip(labels, scores, strict=True)
        ]
