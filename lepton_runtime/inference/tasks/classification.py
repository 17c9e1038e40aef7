"""Text classification: logits per text -> the most probable label, its probability and every label's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from lepton_runtime.inference.tasks.base import Task
from lepton_runtime.inference.tokenization import EncodedText
from lepton_runtime.prediction import Prediction
from lepton_runtime.task_names import TEXT_CLASSIFICATION


class Classification(Task):
    """Softmax over the labels of a sequence classifier."""

    name: ClassVar[str] = TEXT_CLASSIFICATION
    output_name: ClassVar[str] = "logits"

    def results(self, outputs: np.ndarray, encoded: Sequence[EncodedText]) -> list[Prediction]:
        probabilities = softmax(outputs)
        labels = self.labels
        predictions = []
        for row, text in zip(probabilities, encoded, strict=True):
            best = int(row.argmax())
            predictions.append(
                Prediction(
                    label=labels[best],
                    score=float(row[best]),
                    scores={label: float(p) for label, p in zip(labels, row, strict=True)},
                    model=self.provenance,
                    truncated=text.truncated,
                )
            )
        return predictions


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by each row's maximum so large logits do not overflow."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities
