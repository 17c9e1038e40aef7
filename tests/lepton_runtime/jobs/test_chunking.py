"""Chunk planning as a pure function: every text in exactly one chunk, similar lengths together within a window,
and the rows put back in input order."""

from __future__ import annotations

import itertools
import random

import pytest

from lepton_runtime.jobs.chunking import in_input_order, plan_chunks


def _items(count: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"id{i}", "x" * rng.randint(1, 300)) for i in range(count)]


def test_every_text_lands_in_exactly_one_chunk_within_its_window() -> None:
    items = _items(1000)
    windows = list(plan_chunks(items, chunk_size=30, window_chunks=4))
    chunks = [chunk for window in windows for chunk in window]
    assert [chunk.index for chunk in chunks] == list(range(len(chunks))) == list(range(34))
    assert all(len(chunk.items) <= 30 for chunk in chunks)
    positions = [p for chunk in chunks for p in chunk.positions]
    assert sorted(positions) == list(range(1000))
    for chunk in chunks:
        assert chunk.items == [items[p] for p in chunk.positions]
    start = 0
    for window in windows:  # a window holds exactly a contiguous stretch of the input
        covered = sorted(p for chunk in window for p in chunk.positions)
        assert covered == list(range(start, start + len(covered)))
        start += len(covered)


def test_texts_of_similar_length_share_a_chunk() -> None:
    windows = list(plan_chunks(_items(480), chunk_size=40, window_chunks=12))
    assert len(windows) == 1
    lengths = [[len(text) for _, text in chunk.items] for chunk in windows[0]]
    assert all(a == sorted(a) for a in lengths)
    assert all(max(a) <= min(b) for a, b in itertools.pairwise(lengths))
    unsorted_spread = 299  # what one chunk would span in input order
    assert max(max(a) - min(a) for a in lengths) < unsorted_spread / 4


def test_rows_come_back_in_input_order() -> None:
    items = _items(250)
    for window in plan_chunks(items, chunk_size=16, window_chunks=5):
        rows = [(chunk.positions, [item_id for item_id, _ in chunk.items]) for chunk in window]
        restored = in_input_order(rows)
        first = min(p for chunk in window for p in chunk.positions)
        assert restored == [item_id for item_id, _ in items[first : first + len(restored)]]


def test_a_text_that_is_not_a_string_is_planned_too_and_nothing_is_planned_for_nothing() -> None:
    items = [("a", "long text here"), ("b", None), ("c", "x")]
    (window,) = plan_chunks(items, chunk_size=2)  # type: ignore[arg-type]
    assert [item_id for chunk in window for item_id, _ in chunk.items] == ["b", "c", "a"]
    assert list(plan_chunks([], chunk_size=5)) == []
    with pytest.raises(ValueError, match="chunk_size"):
        list(plan_chunks(items, chunk_size=0))  # type: ignore[arg-type]
