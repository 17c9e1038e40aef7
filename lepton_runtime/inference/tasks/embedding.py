"""Sentence embeddings: the graph pools and normalises, so a batch's output rows are the vectors themselves.

The export puts mean pooling over the attention mask and L2 normalisation (as sentence-transformers'
all-MiniLM-L6-v2 defines them) inside the ONNX graph: every runtime gets the same vectors, and the
engine only splits the batch into rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from lepton_runtime.inference.tasks.base import Task
from lepton_runtime.inference.tokenization import EncodedText
from lepton_runtime.prediction import Embedding
from lepton_runtime.task_names import EMBEDDING


class SentenceEmbedding(Task):
    """One float32 vector per text."""

    name: ClassVar[str] = EMBEDDING
    output_name: ClassVar[str] = "sentence_embedding"

    def results(self, outputs: np.ndarray, encoded: Sequence[EncodedText]) -> list[Embedding]:
        vectors = np.asarray(outputs, dtype=np.float32)
        return [
            Embedding(vector=vector, model=self.provenance, truncated=text.truncated, tokens=len(text.ids))
            for vector, text in zip(vectors, encoded, strict=True)
        ]
