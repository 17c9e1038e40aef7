"""Quality gates of reduced-precision variants: int8 against fp32 on a golden set of real texts, fp16 on the GPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lepton_runtime import constants
from lepton_runtime.inference.engine import Engine
from lepton_runtime.labelled_data import LabelledTexts

# Rounding slack so that a drop of exactly the limit (0.5 point = 1 text in 200) passes.
FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class GateResult:
    """The figures of one gate and whether they pass."""

    passed: bool
    figures: dict[str, Any]
    reason: str


def predicted_labels(directory: Path, onnx_file: str, texts: list[str], device: str = "cpu") -> list[str]:
    """Labels predicted by one ONNX file of a staged model directory, through the real Engine."""
    engine = Engine(directory, onnx_file=onnx_file, device=device, warm=False)  # type: ignore[arg-type]
    return [p.label for p in engine.classify(texts)]


def accuracy(predicted: list[str], truth: list[str]) -> float:
    """Share of predicted labels equal to the true ones."""
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))


def compare_predictions(
    reference: list[str],
    candidate: list[str],
    golden: LabelledTexts,
    *,
    max_accuracy_drop_points: float = constants.INT8_MAX_ACCURACY_DROP_POINTS,
    min_agreement_unlabelled: float = constants.INT8_MIN_AGREEMENT_UNLABELLED,
) -> GateResult:
    """Gate a candidate against fp32: accuracy drop in points when labels exist, else agreement."""
    agreement = float(np.mean(np.asarray(reference) == np.asarray(candidate)))
    figures: dict[str, Any] = {"golden_texts": len(reference), "agreement_with_fp32": round(agreement, 4)}
    if golden.labels is not None:
        reference_accuracy = accuracy(reference, golden.labels)
        candidate_accuracy = accuracy(candidate, golden.labels)
        drop_points = (reference_accuracy - candidate_accuracy) * 100
        figures |= {
            "fp32_accuracy": round(reference_accuracy, 4),
            "accuracy": round(candidate_accuracy, 4),
            "accuracy_drop_points": round(drop_points, 3),
            "max_accuracy_drop_points": max_accuracy_drop_points,
        }
        passed = drop_points <= max_accuracy_drop_points + FLOAT_SLACK
        reason = (
            f"accuracy {candidate_accuracy:.4f} vs fp32 {reference_accuracy:.4f}"
            f" (drop {drop_points:.2f} points, limit {max_accuracy_drop_points})"
        )
    else:
        figures["min_agreement"] = min_agreement_unlabelled
        passed = agreement >= min_agreement_unlabelled - FLOAT_SLACK
        reason = f"agreement with fp32 {agreement:.4f} (unlabelled golden set, at least {min_agreement_unlabelled})"
    return GateResult(passed, figures, reason)
