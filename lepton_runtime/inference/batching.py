"""Length-aware batching: sort texts by token count, cut batches by a padded-token budget, pad each batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lepton_runtime.inference.tokenization import EncodedText


def plan_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int) -> list[np.ndarray]:
    """Group row indices into batches of similar length whose padded size (rows x longest) fits the budget.

    Rows are taken shortest first, so each batch pads only to its own longest row. A row longer
    than the budget still gets a batch of its own.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        while (
            end < len(order)
            and end - start < max_batch_size
            and (end - start + 1) * lengths[order[end]] <= max_batch_tokens
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


@dataclass(frozen=True)
class PaddedBatch:
    """Model inputs of one batch and the counts that measure padding waste."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    real_tokens: int

    @property
    def padded_tokens(self) -> int:
        return int(self.input_ids.size)


def pad_batch(encoded: Sequence[EncodedText], pad_id: int = 0) -> PaddedBatch:
    """Stack encoded texts into right-padded int64 arrays (one vectorised scatter, no loop per row)."""
    lengths = np.fromiter((len(item.ids) for item in encoded), dtype=np.int64, count=len(encoded))
    real = lengths[:, None] > np.arange(int(lengths.max()))  # row-major True prefixes: where tokens go
    input_ids = np.full(real.shape, pad_id, dtype=np.int64)
    input_ids[real] = np.concatenate([item.ids for item in encoded])
    token_type_ids = np.zeros(real.shape, dtype=np.int64)
    token_type_ids[real] = np.concatenate([item.type_ids for item in encoded])
    return PaddedBatch(input_ids, real.astype(np.int64), token_type_ids, int(lengths.sum()))
