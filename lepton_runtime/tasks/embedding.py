"""Sentence embeddings: one float32 vector per text (pooled and normalised inside the graph)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lepton_runtime.prediction import Embedding, Provenance
from lepton_runtime.task_names import EMBEDDING
from lepton_runtime.tasks.spec import TaskSpec

if TYPE_CHECKING:
    import pyarrow as pa


class EmbeddingSpec(TaskSpec):
    """Vectors of an embedding model (``lepton export --task embedding``); its HTTP route is OpenAI's shape
    (``POST /v1/embeddings``, producer/api/routes/embeddings.py); bulk output ``.npy``, Parquet or JSON lines."""

    name: ClassVar[str] = EMBEDDING
    model_task: ClassVar[str] = EMBEDDING
    command: ClassVar[str] = "embed"
    summary: ClassVar[str] = "Embed texts with an embedding model: one vector per text (unit length)."
    route: ClassVar[str | None] = None
    example_model: ClassVar[str] = "minilm"

    def result_from_dict(self, item: dict[str, Any], provenance: Provenance) -> Embedding:
        return Embedding(
            vector=item["embedding"], model=provenance, truncated=item.get("truncated", False),
            tokens=item.get("tokens", 0),
        )  # fmt: skip

    def cli_fields(self, result: Embedding) -> dict[str, Any]:
        return {"tokens": result.tokens, "embedding": [round(float(x), 6) for x in result.vector]}

    def part_columns(self, answered: Sequence[Any]) -> dict[str, pa.Array]:
        import pyarrow as pa

        vectors = [
            np.asarray(result.vector, np.float32) if isinstance(result, Embedding) else None for result in answered
        ]
        width = next((len(vector) for vector in vectors if vector is not None), 0)
        blank = np.zeros(width, np.float32)  # under the mask: a row that got no vector
        flat = np.concatenate([v if v is not None else blank for v in vectors] or [blank])
        mask = pa.array([vector is None for vector in vectors])
        return {"embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width, mask=mask)}
