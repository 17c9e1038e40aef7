"""A bulk job's output rows as columns: one chunk's results into an Arrow table (its part; ``error_table`` for a
chunk that wrote none), and a part's rows back into the JSON lines that ``lepton jobs results`` prints.

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

import pyarrow as pa

from lepton_runtime.prediction import ItemError, Provenance
from lepton_runtime.tasks import TaskSpec, task_spec
from lepton_runtime.tasks.spec import VectorForm

PROVENANCE_METADATA = b"lepton.model"
TASK_METADATA = b"lepton.task"
# The columns every row has whatever its task (besides the task's own), read by whoever turns rows into lines
COMMON_ROW_COLUMNS = ("id", "truncated", "error_code", "error_message")
# Where a row came from: its place in the input and the model that answered it (the output files leave them out)
BOOKKEEPING_COLUMNS = ("position", "model_version", "model_sha256")


def part_table(
    spec: TaskSpec,
    ids: Sequence[str | None],
    positions: Sequence[int | None],
    results: Sequence[Any],
    provenance: Provenance,
) -> pa.Table:
    """One chunk's output: a row per input in input order, a result or an ``ItemError`` each."""
    answered = [None if isinstance(result, ItemError) else result for result in results]
    columns = _row_columns(ids, positions, results, spec.part_columns(answered))
    columns["model_version"] = pa.array([f"{provenance.model}@{provenance.version}"] * len(results), pa.string())
    columns["model_sha256"] = pa.array([provenance.sha256] * len(results), pa.string())
    metadata = {PROVENANCE_METADATA: json.dumps(provenance.as_dict()).encode(), TASK_METADATA: spec.name.encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


def error_table(ids: Sequence[str | None], positions: Sequence[int | None], detail: dict[str, str]) -> pa.Table:
    """The rows of a chunk that wrote no part (it failed, or never ran): each row the same error, no task columns
    (a reader fills them with nulls)."""
    errors = [ItemError(index, detail["code"], detail["message"]) for index in range(len(ids))]
    return pa.table(_row_columns(ids, positions, errors, {}))


def _row_columns(
    ids: Sequence[str | None], positions: Sequence[int | None], results: Sequence[Any], task: dict[str, pa.Array]
) -> dict[str, pa.Array]:
    """Every row's columns in order around the ``task`` columns: id, position, then truncated and the error."""
    errors = [result if isinstance(result, ItemError) else None for result in results]
    return {
        "id": pa.array(ids, pa.string()),
        "position": pa.array(positions, pa.int64()),
        **task,
        "truncated": pa.array([bool(getattr(result, "truncated", False)) for result in results], pa.bool_()),
        "error_code": pa.array([error.code if error else None for error in errors], pa.string()),
        "error_message": pa.array([error.message if error else None for error in errors], pa.string()),
    }


def with_ids(table: pa.Table, first_position: int) -> pa.Table:
    """``table`` with every row's id: a row without one is known by its position (``first_position`` is the
    table's first row's)."""
    ids = table.column("id")
    if ids.null_count == 0:
        return table
    filled = [row_id if row_id is not None else str(first_position + index) for index, row_id in
              enumerate(ids.to_pylist())]  # fmt: skip
    return table.set_column(table.schema.get_field_index("id"), "id", pa.array(filled, pa.string()))


def json_lines(
    batch: pa.RecordBatch, metadata: dict[bytes, bytes] | None, *, vectors: VectorForm = "base64"
) -> Iterator[str]:
    """The JSON lines of a part's rows (ids filled: ``with_ids``): ``{"id", <the task's fields>, "model"}``, the
    task's fields its spec's (``TaskSpec.line_fields``: ``label`` and ``score``, an embedding's ``vector`` as base64
    float32 or, with ``vectors="floats"``, its ``embedding`` as numbers, ``entities``), ``"truncated": true`` where
    the text was cut; ``{"id", "error": {"code", "message"}}`` for a row that got no result."""
    metadata = metadata or {}
    provenance = json.loads(metadata.get(PROVENANCE_METADATA, b"null"))
    ids, truncated, codes, messages = (batch.column(name).to_pylist() for name in COMMON_ROW_COLUMNS)
    fields: list[dict[str, Any]] | None = None
    for row in range(batch.num_rows):
        if codes[row] is not None:
            yield json.dumps({"id": ids[row], "error": {"code": codes[row], "message": messages[row]}},
                             ensure_ascii=False)  # fmt: skip
            continue
        if fields is None:  # read once per batch, and only where a row was answered
            spec = task_spec(metadata[TASK_METADATA].decode())
            fields = spec.line_fields(batch.select(task_columns(batch.schema)), vectors)
        line: dict[str, Any] = {"id": ids[row], **fields[row]}
        if truncated[row]:
            line["truncated"] = True
        line["model"] = provenance
        yield json.dumps(line, ensure_ascii=False)


def task_columns(schema: pa.Schema) -> list[str]:
    """The names of a part's task columns (the spec's), in order: every column but the common ones."""
    return [name for name in schema.names if name not in (*COMMON_ROW_COLUMNS, *BOOKKEEPING_COLUMNS)]
