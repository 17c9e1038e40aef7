"""The parity gate: the ONNX graph must reproduce PyTorch at every shape, by the task's metric (logits, or the cosine
of vectors), or nothing is published."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lepton_runtime import constants
from lepton_runtime.errors import ParityError

# Token ids drawn for parity inputs start past the special tokens of common vocabularies.
FIRST_ORDINARY_TOKEN_ID = 1000


class ParityMetric(Protocol):
    """How one task compares ONNX Runtime's output with PyTorch's at one shape, and what passing means."""

    def case(self, actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
        """The figures of one shape (the rows that count: padded positions of a per-token output left out)."""

    def passed(self, case: dict[str, float]) -> bool: ...

    def describe(self, case: dict[str, float]) -> str:
        """Why a shape failed, with the limit."""

    def summary(self, cases: list[dict[str, float]]) -> dict[str, Any]:
        """What the manifest keeps besides every case."""


@dataclass(frozen=True)
class LogitDifference:
    """Logits within ``tolerance`` of PyTorch's and the same argmax in every row (classifiers, entity models)."""

    tolerance: float = constants.PARITY_MAX_ABS_DIFF

    def case(self, actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
        mismatches = int((actual.argmax(axis=-1) != expected.argmax(axis=-1)).sum())
        return {"max_abs_diff": float(np.abs(actual - expected).max()), "argmax_mismatches": mismatches}

    def passed(self, case: dict[str, float]) -> bool:
        return case["max_abs_diff"] <= self.tolerance and case["argmax_mismatches"] == 0

    def describe(self, case: dict[str, float]) -> str:
        return (
            f"max |logit diff| {case['max_abs_diff']:.3g} (limit {self.tolerance:g}), argmax differs in "
            f"{case['argmax_mismatches']} row(s)"
        )

    def summary(self, cases: list[dict[str, float]]) -> dict[str, Any]:
        return {"tolerance": self.tolerance, "max_abs_diff": max(case["max_abs_diff"] for case in cases)}


@dataclass(frozen=True)
class RowCosine:
    """Every row's cosine to PyTorch's vector at least ``min_cosine`` (embedding models)."""

    min_cosine: float = constants.EMBEDDING_PARITY_MIN_COSINE

    def case(self, actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
        cosines = row_cosines(actual, expected)
        return {"min_cosine": float(cosines.min()), "max_abs_diff": float(np.abs(actual - expected).max())}

    def passed(self, case: dict[str, float]) -> bool:
        return case["min_cosine"] >= self.min_cosine

    def describe(self, case: dict[str, float]) -> str:
        return f"least cosine {case['min_cosine']:.6f} (at least {self.min_cosine})"

    def summary(self, cases: list[dict[str, float]]) -> dict[str, Any]:
        return {"min_cosine_required": self.min_cosine, "min_cosine": min(case["min_cosine"] for case in cases)}


def row_cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``left`` with the same row of ``right``."""
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    cosines: np.ndarray = (left * right).sum(axis=1) / np.maximum(norms, 1e-12)
    return cosines


def parity_inputs(batch_size: int, sequence_length: int, vocab_size: int, seed: int) -> dict[str, np.ndarray]:
    """Random ordinary tokens with rows of varied real length, so the padding mask is exercised too."""
    rng = np.random.default_rng(seed)
    low = min(FIRST_ORDINARY_TOKEN_ID, vocab_size // 2)
    input_ids = rng.integers(low, vocab_size, size=(batch_size, sequence_length), dtype=np.int64)
    lengths = rng.integers(1, sequence_length + 1, size=batch_size)
    lengths[0] = sequence_length
    attention_mask = (np.arange(sequence_length)[None, :] < lengths[:, None]).astype(np.int64)
    return {
        "input_ids": input_ids * attention_mask,
        "attention_mask": attention_mask,
        "token_type_ids": np.zeros_like(input_ids),
    }


def check_parity(
    model: Any,
    onnx_path: Path,
    vocab_size: int,
    *,
    metric: ParityMetric | None = None,
    output_name: str = "logits",
    batch_sizes: tuple[int, ...] = constants.PARITY_BATCH_SIZES,
    sequence_lengths: tuple[int, ...] = constants.PARITY_SEQUENCE_LENGTHS,
) -> dict[str, Any]:
    """Compare ``output_name`` of the graph with the PyTorch module's at every shape by ``metric`` (default: logits
    within the parity tolerance, same argmax); raise one ParityError listing every failing shape, else return the
    figures the manifest keeps."""
    import onnxruntime as ort
    import torch

    metric = metric or LogitDifference()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = {node.name for node in session.get_inputs()}
    cases = []
    for batch_size in batch_sizes:
        for sequence_length in sequence_lengths:
            feeds = parity_inputs(batch_size, sequence_length, vocab_size, seed=batch_size * 1000 + sequence_length)
            with torch.no_grad():
                outputs = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
                expected = getattr(outputs, "logits", outputs).float().numpy()
            (actual,) = session.run([output_name], {k: v for k, v in feeds.items() if k in names})
            if actual.ndim == 3:  # an output per token: padded positions are no one's output
                real = feeds["attention_mask"].astype(bool)
                actual, expected = actual[real], expected[real]
            shape = {"batch_size": batch_size, "sequence_length": sequence_length}
            cases.append(shape | metric.case(actual, expected))
    failures = [case for case in cases if not metric.passed(case)]
    if failures:
        raise ParityError(
            f"the ONNX graph {onnx_path.name} does not match PyTorch at {len(failures)} of {len(cases)} shapes,"
            " so nothing was published: "
            + "; ".join(
                f"batch {case['batch_size']} x seq {case['sequence_length']}: {metric.describe(case)}"
                for case in failures
            )
            + ". Check for unsupported operators or a different attention implementation in the checkpoint."
        )
    return {**metric.summary(cases), "cases": cases}
