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
    """Stack encoded texts into right-padded int64 arrays."""
    width = max(len(item.ids) for item in encoded)
    input_ids = np.full((len(encoded), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(encoded), width), dtype=np.int64)
    token_type_ids = np.zeros((len(encoded), width), dtype=np.int64)
    for row, item in enumerate(encoded):
        count = len(item.ids)
        input_ids[row, :count] = item.ids
        attention_mask[row, :count] = 1
        token_type_ids[row, :count] = item.type_ids
    return PaddedBatch(input_ids, attention_mask, token_type_ids, int(attention_mask.sum()))
