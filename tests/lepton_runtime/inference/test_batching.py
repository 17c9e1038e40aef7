import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lepton_runtime.inference.batching import pad_batch, plan_batches
from lepton_runtime.inference.tokenization import EncodedText


@given(st.lists(st.integers(1, 300), min_size=1, max_size=400), st.integers(16, 4096), st.integers(1, 64))
def test_every_row_lands_in_exactly_one_batch_within_budget(lengths: list[int], budget: int, max_rows: int) -> None:
    batches = plan_batches(lengths, budget, max_rows)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= max_rows
        assert padded <= budget or len(batch) == 1


def test_sorting_by_length_cuts_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=512).tolist()
    sorted_padded = sum(len(b) * max(lengths[i] for i in b) for b in plan_batches(lengths, 10**9, 32))
    arrival_padded = sum(32 * max(lengths[i : i + 32]) for i in range(0, 512, 32))
    assert sorted_padded < 0.7 * arrival_padded


def test_texts_of_very_different_lengths_run_apart_and_equal_ones_together() -> None:
    lengths = [8, 60, 9, 8, 61, 10, 62, 9]  # a few callers' requests: short ones and long ones
    batches = [sorted(lengths[i] for i in batch) for batch in plan_batches(lengths, 1024, 64)]
    assert batches == [[8, 8, 9, 9, 10], [60, 61, 62]], "one batch would pad the short ones to 62 tokens"
    assert len(plan_batches([12] * 40, 1024, 64)) == 1, "equal lengths: one call"
    padded = sum(len(b) * max(lengths[i] for i in b) for b in plan_batches(lengths, 1024, 64))
    assert padded < 0.6 * len(lengths) * max(lengths)


def test_pad_batch_right_pads_with_a_mask() -> None:
    items = [
        EncodedText(np.array([101, 7, 102]), np.zeros(3, dtype=np.int64), False),
        EncodedText(np.array([101, 102]), np.zeros(2, dtype=np.int64), False),
    ]
    batch = pad_batch(items)
    assert batch.input_ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert (batch.real_tokens, batch.padded_tokens) == (5, 6)
