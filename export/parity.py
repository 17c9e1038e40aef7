"""The parity gate: the ONNX graph must reproduce PyTorch's logits at every shape, or nothing is published."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lepton_runtime import constants
from lepton_runtime.errors import ParityError

# Token ids drawn for parity inputs start past the special tokens of common vocabularies.
FIRST_ORDINARY_TOKEN_ID = 1000


@dataclass(frozen=True)
class ParityCase:
    """PyTorch against ONNX Runtime at one shape."""

    batch_size: int
    sequence_length: int
    max_abs_diff: float
    argmax_mismatches: int

    def passed(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance and self.argmax_mismatches == 0

    def describe(self, tolerance: float) -> str:
        return (
            f"batch {self.batch_size} x seq {self.sequence_length}: max |logit diff| {self.max_abs_diff:.3g}"
            f" (limit {tolerance:g}), argmax differs in {self.argmax_mismatches} row(s)"
        )


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
    batch_sizes: tuple[int, ...] = constants.PARITY_BATCH_SIZES,
    sequence_lengths: tuple[int, ...] = constants.PARITY_SEQUENCE_LENGTHS,
    tolerance: float = constants.PARITY_MAX_ABS_DIFF,
) -> dict[str, Any]:
    """Compare every shape; raise one ParityError listing every failing shape, else return the figures."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = {node.name for node in session.get_inputs()}
    cases = []
    for batch_size in batch_sizes:
        for sequence_length in sequence_lengths:
            feeds = parity_inputs(batch_size, sequence_length, vocab_size, seed=batch_size * 1000 + sequence_length)
            with torch.no_grad():
                outputs = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
                expected = getattr(outputs, "logits", outputs).float().numpy()
            (actual,) = session.run(["logits"], {k: v for k, v in feeds.items() if k in names})
            if actual.ndim == 3:  # logits per token: padded positions are no one's output
                real = feeds["attention_mask"].astype(bool)
                actual, expected = actual[real], expected[real]
            cases.append(
                ParityCase(
                    batch_size,
                    sequence_length,
                    float(np.abs(actual - expected).max()),
                    int((actual.argmax(axis=-1) != expected.argmax(axis=-1)).sum()),
                )
            )
    failures = [case for case in cases if not case.passed(tolerance)]
    if failures:
        raise ParityError(
            f"the ONNX graph {onnx_path.name} does not match PyTorch at {len(failures)} of {len(cases)} shapes,"
            " so nothing was published: "
            + "; ".join(case.describe(tolerance) for case in failures)
            + ". Check for unsupported operators or a different attention implementation in the checkpoint."
        )
    return {
        "tolerance": tolerance,
        "max_abs_diff": max(case.max_abs_diff for case in cases),
        "cases": [asdict(case) for case in cases],
    }
