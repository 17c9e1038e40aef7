"""Chunk planning of a bulk job: which texts share a chunk, and how the chunks' rows go back into input order.

Texts of similar length share a chunk, so each chunk's batches carry little padding (as in one in-process
call over all texts). Sorting is done within windows of ``window_chunks`` chunks, so a window's chunks hold
exactly the texts of a contiguous stretch of the input: results are put back in input order window by
window, and memory stays bounded by one window on both sides. Pure functions: the job store saves and reads
what they plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

# Chunks per sorting window (texts of similar length are grouped within it).
SORT_WINDOW_CHUNKS = 16


@dataclass(frozen=True)
class PlannedChunk:
    """One chunk: its index in the job, its ``(id, text)`` items in the order it runs them, and each item's
    position in the job's input."""

    index: int
    items: list[tuple[str, str]]
    positions: list[int]


def plan_chunks(
    items: Iterable[tuple[str, str]], chunk_size: int, window_chunks: int = SORT_WINDOW_CHUNKS
) -> Iterator[list[PlannedChunk]]:
    """The chunks of a job, one window at a time: within each window, items sorted by text length (stable)
    and cut into chunks of at most ``chunk_size``. A text that is not a string sorts first (it fails alone)."""
    if chunk_size < 1 or window_chunks < 1:
        raise ValueError(f"chunk_size ({chunk_size}) and window_chunks ({window_chunks}) must be at least 1")
    iterator = iter(items)
    first_position = next_index = 0
    while window := list(islice(iterator, chunk_size * window_chunks)):
        by_length = sorted(range(len(window)), key=lambda i: len(text) if isinstance(text := window[i][1], str) else 0)
        chunks = []
        for start in range(0, len(window), chunk_size):
            members = by_length[start : start + chunk_size]
            chunks.append(PlannedChunk(next_index, [window[i] for i in members], [first_position + i for i in members]))
            next_index += 1
        first_position += len(window)
        yield chunks


def in_input_order(chunks: Iterable[tuple[list[int], list[str]]]) -> list[str]:
    """The rows of one window's chunks, given as ``(positions, rows)`` per chunk, in input order."""
    placed = [pair for positions, rows in chunks for pair in zip(positions, rows, strict=True)]
    placed.sort(key=lambda pair: pair[0])
    return [row for _, row in placed]
