"""Sentence embeddings: one float32 vector per text (pooled and normalised inside the graph)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lepton_runtime.prediction import VECTOR_ENCODING, Embedding, Provenance, encode_vector
from lepton_runtime.task_names import EMBEDDING
from lepton_runtime.tasks.spec import TaskSpec, VectorForm

if TYPE_CHECKING:
    import pyarrow as pa


class EmbeddingSpec(TaskSpec):
    """Vectors of an embedding model (``lepton export --task embedding``); its HTTP route is OpenAI's shape
    (``POST /v1/embeddings``, producer/api/routes/embeddings.py); bulk output ``.npy``, Parquet or JSON lines."""

    name: ClassVar[str] = EMBEDDING
    model_task: ClassVar[str] = EMBEDDING
    command: ClassVar[str] = "embed"
    summary: ClassVar[str] = "Embed texts with an embedding model: one vector per text (unit length)."
    route: ClassVar[str] = "/v1/embeddings"
    model_description: ClassVar[str] = "an embedding model"
    example_model: ClassVar[str] = "minilm"
    gives_vectors: ClassVar[bool] = True
    result_fields: ClassVar[Mapping[str, Any]] = {"embedding": list[float], "tokens": int, "truncated": bool}

    def http_body(self, texts: Sequence[str], model: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"input": list(texts), "model": model}  # OpenAI's shape

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
        if not width:  # no text got a vector: a width is not known (an output file takes another part's)
            return {"embedding": pa.nulls(len(vectors), pa.list_(pa.float32()))}
        blank = np.zeros(width, np.float32)  # under the mask: a row that got no vector
        flat = np.concatenate([v if v is not None else blank for v in vectors] or [blank])
        mask = pa.array([vector is None for vector in vectors], pa.bool_())
        return {"embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width, mask=mask)}

    def line_fields(self, columns: pa.RecordBatch, vectors: VectorForm) -> list[dict[str, Any]]:
        matrix = vector_matrix(columns.column("embedding"))
        if vectors == "floats":
            return [{"embedding": row.tolist()} for row in matrix]
        return [{"vector": encode_vector(row), "encoding": VECTOR_ENCODING} for row in matrix]


def vector_matrix(column: pa.FixedSizeListArray | pa.ChunkedArray) -> np.ndarray:
    """A fixed-size list column's rows as a float32 matrix (a null row: zeros, never read)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = column.type.list_size
    values = column.values.to_numpy(zero_copy_only=False)[column.offset * width : (column.offset + len(column)) * width]
    matrix: np.ndarray = values.reshape(len(column), width)
    return matrix
