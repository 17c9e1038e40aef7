"""Text classification: a classifier's most probable label per text, its probability and every label's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

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
