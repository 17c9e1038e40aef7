"""What a task is to the engine: the graph output it reads and how one batch of that output becomes results.

Tokenisation, token-budget batching, sessions, the registry, jobs and the API are shared by every task; a
task adds only this: its name in the manifest, its graph output, and its post-processing into the result
objects of ``lepton_runtime.prediction`` (which producers read back with ``result_from_dict``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from lepton_runtime.inference.tokenization import EncodedText
from lepton_runtime.prediction import Provenance


class Task(ABC):
    """One kind of model output, bound to a loaded model's labels and provenance."""

    name: ClassVar[str]  # as the manifest records it, e.g. "text-classification"
    output_name: ClassVar[str]  # the graph output the engine fetches, e.g. "logits"
    # Token-level tasks read each token's character span; those that cut long texts into overlapping windows
    # (instead of truncating them) say how much of a window the next one repeats.
    needs_offsets: ClassVar[bool] = False
    window_overlap: ClassVar[float | None] = None

    def __init__(self, labels: Sequence[str], provenance: Provenance) -> None:
        self.labels = list(labels)
        self.provenance = provenance

    @abstractmethod
    def results(self, outputs: np.ndarray, encoded: Sequence[EncodedText]) -> list[Any]:
        """One result per row of ``outputs`` (a batch of the graph's output), in row order; ``encoded`` are
        the texts of the rows (token ids, truncation)."""

    def combine(self, windows: list[Any]) -> Any:
        """One text's result from the results of its windows, in order (only tasks with ``window_overlap``)."""
        return windows[0]
