"""A bulk job's output rows as columns: one chunk's results into an Arrow table (its part), and a part's rows back
into the JSON lines that ``lepton jobs results`` prints.

Every part has ``id`` and ``position`` (the row's place in the input; null, with a null id, where a line file
without ids was read in ranges: the reader fills both from the manifest's row counts), the task's columns, then
``truncated``, ``error_code`` and ``error_message`` (a row that got no result), and the provenance columns
``model_version`` and ``model_sha256``; the whole provenance is in the file's metadata (``lepton.model``), the task
in ``lepton.task``. The task's columns are its spec's (``TaskSpec.part_columns``): ``label`` and ``score`` for a
classifier and zero-shot, ``embedding`` (fixed-size float32 lists) for an embedding model, ``entities`` (lists of
start, end, label, score, text) for an entity model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from lepton_runtime.prediction import (
    VECTOR_ENCODING,
    ItemError,
    Provenance,
    encode_vector,
)
from lepton_runtime.tasks import TaskSpec

PROVENANCE_METADATA = b"lepton.model"
TASK_METADATA = b"lepton.task"
# Decimals of a score in JSON lines (what a float32 model output holds).
SCORE_DECIMALS = 6


def part_table(
    spec: TaskSpec,
    ids: Sequence[str | None],
    positions: Sequence[int | None],
    results: Sequence[Any],
    provenance: Provenance,
) -> pa.Table:
    """One chunk's output: a row per input in input order, a result or an ``ItemError`` each."""
    answered = [None if isinstance(result, ItemError) else result for result in results]
    errors = [result if isinstance(result, ItemError) else None for result in results]
    columns: dict[str, pa.Array] = {
        "id": pa.array(ids, pa.string()),
        "position": pa.array(positions, pa.int64()),
        **spec.part_columns(answered),
        "truncated": pa.array([bool(getattr(result, "truncated", False)) for result in answered], pa.bool_()),
        "error_code": pa.array([error.code if error else None for error in errors], pa.string()),
        "error_message": pa.array([error.message if error else None for error in errors], pa.string()),
        "model_version": pa.array([f"{provenance.model}@{provenance.version}"] * len(results), pa.string()),
        "model_sha256": pa.array([provenance.sha256] * len(results), pa.string()),
    }
    metadata = {PROVENANCE_METADATA: json.dumps(provenance.as_dict()).encode(), TASK_METADATA: spec.name.encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


def json_lines(batch: pa.RecordBatch, metadata: dict[bytes, bytes] | None, first_position: int) -> Iterator[str]:
    """The JSON lines of a part's rows (``{"id", "label", "score", "model"}``, an embedding's ``vector`` as base64
    float32, ``entities``; ``{"id", "error": {"code", "message"}}`` for a row that got no result). A row without an
    id is known by its position: ``first_position`` is the batch's first row's."""
    provenance = json.loads((metadata or {}).get(PROVENANCE_METADATA, b"null"))
    columns = batch.to_pydict() if "embedding" not in batch.schema.names else _without_vectors(batch)
    vectors = _vectors(batch) if "embedding" in batch.schema.names else None
    for row in range(batch.num_rows):
        identity = columns["id"][row] if columns["id"][row] is not None else str(first_position + row)
        if columns["error_code"][row] is not None:
            error = {"code": columns["error_code"][row], "message": columns["error_message"][row]}
            yield json.dumps({"id": identity, "error": error}, ensure_ascii=False)
            continue
        line: dict[str, Any] = {"id": identity}
        if "label" in columns:
            line["label"] = columns["label"][row]
            line["score"] = round(columns["score"][row], SCORE_DECIMALS)
        elif vectors is not None:
            line["vector"] = encode_vector(vectors[row])
            line["encoding"] = VECTOR_ENCODING
        else:
            line["entities"] = columns["entities"][row]
        if columns["truncated"][row]:
            line["truncated"] = True
        line["model"] = provenance
        yield json.dumps(line, ensure_ascii=False)


def _without_vectors(batch: pa.RecordBatch) -> dict[str, list[Any]]:
    return {name: batch.column(name).to_pylist() for name in batch.schema.names if name != "embedding"}


def _vectors(batch: pa.RecordBatch) -> np.ndarray:
    """The rows' vectors as a matrix (a row that got none: zeros, never read)."""
    column = batch.column("embedding")
    width = column.type.list_size
    values = column.values.to_numpy(zero_copy_only=False)[column.offset * width : (column.offset + len(column)) * width]
    matrix: np.ndarray = values.reshape(len(column), width)
    return matrix
