"""Bulk job output files, by the file's extension, written from the job's tables as they stream from the data store
(a table per chunk: ``BulkData.tables``), so a 100,000-text job never holds its output in memory, and the file gets
its name only when whole. Nothing here knows a task: a task's columns and lines are its spec's.

- ``.jsonl`` (or any other extension): one JSON object per input, in input order (output_rows.json_lines); an
  embedding row carries ``"embedding": [floats]``.
- ``.npy`` (a task whose output is vectors): a float32 array with one row per input in input order (NaN for an
  input that failed), and beside it ``NAME.ids.jsonl`` with each row's ``id`` (and ``error``), since an array holds
  no ids.
- ``.parquet``: columns ``id``, then the task's (``TaskSpec.part_columns``: ``label``/``score``, ``embedding`` as
  fixed-size float32 lists, ``entities``), then ``truncated``, ``error_code``, ``error_message``; the model's
  provenance in the file's metadata. The parts' columns are copied as they are: no row goes through JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.jobs.output_rows import BOOKKEEPING_COLUMNS, COMMON_ROW_COLUMNS, TASK_METADATA, json_lines
from lepton_runtime.tasks import TaskSpec
from lepton_runtime.tasks.embedding import vector_matrix

OUTPUT_FORMATS = (".jsonl", ".npy", ".parquet")
# The column a vector task's part holds its vectors in (what a .npy file is made of)
VECTOR_COLUMN = "embedding"
# A Parquet output in which every row is an error
ERRORS_ONLY_SCHEMA = pa.schema(
    [("id", pa.string()), ("truncated", pa.bool_()), ("error_code", pa.string()), ("error_message", pa.string())]
)


def check_output_file(output: Path, spec: TaskSpec) -> None:
    """Refuse, before a job runs, an output file whose format cannot hold its task's rows."""
    if output.suffix.lower() == ".npy" and not spec.gives_vectors:
        raise InvalidInputError(
            f"{output.name}: a .npy file holds vectors, and {spec.name} gives none; write .jsonl or .parquet instead",
            issues=[InputIssue("output", ".npy holds vectors only")],
        )


def write_output(tables: Iterable[pa.Table], target: Path, total_rows: int) -> int:
    """Write a job's output (its tables in input order, every row with its id) to ``target`` in the format its
    extension names; returns the rows written."""
    suffix = target.suffix.lower()
    with _replaced_when_whole(target) as partial:
        if suffix == ".npy":
            return _write_npy(tables, partial, target, total_rows)
        if suffix == ".parquet":
            return _write_parquet(tables, partial)
        return _write_jsonl(tables, partial)


@contextmanager
def _replaced_when_whole(target: Path) -> Iterator[Path]:
    partial = target.with_name(f".{target.name}.partial")
    try:
        yield partial
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _write_jsonl(tables: Iterable[pa.Table], partial: Path) -> int:
    rows = 0
    with partial.open("w", encoding="utf-8") as handle:
        for table in tables:
            for batch in table.to_batches():
                for line in json_lines(batch, table.schema.metadata, vectors="floats"):
                    handle.write(line + "\n")
            rows += table.num_rows
    return rows


def _write_npy(tables: Iterable[pa.Table], partial: Path, target: Path, total_rows: int) -> int:
    """Rows go into a memory-mapped .npy as they come; those before the first vector (errors) wait in a list."""
    ids_target = target.with_name(f"{target.stem}.ids.jsonl")
    array: np.memmap[Any, Any] | None = None
    pending_errors: list[int] = []
    rows = 0
    with _replaced_when_whole(ids_target) as ids_partial, ids_partial.open("w", encoding="utf-8") as ids:
        for table in tables:
            ids_column, _, codes, messages = (table.column(name).to_pylist() for name in COMMON_ROW_COLUMNS)
            answered = [index for index, code in enumerate(codes) if code is None]
            if answered and VECTOR_COLUMN not in table.schema.names:
                task = (table.schema.metadata or {}).get(TASK_METADATA, b"?").decode()
                raise InvalidInputError(
                    f"{target.name}: a .npy file holds vectors, and this job's task ({task}) gives none; write .jsonl"
                    " or .parquet instead"
                )
            if answered:
                vectors = vector_matrix(table.column(VECTOR_COLUMN))
                if array is None:
                    shape = (total_rows, vectors.shape[1])
                    array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
                    array[pending_errors] = np.nan
                array[rows : rows + table.num_rows] = vectors
            for index, (row_id, code, message) in enumerate(zip(ids_column, codes, messages, strict=True)):
                entry: dict[str, Any] = {"id": row_id}
                if code is not None:
                    entry["error"] = {"code": code, "message": message}
                    if array is None:
                        pending_errors.append(rows + index)
                    else:
                        array[rows + index] = np.nan
                ids.write(json.dumps(entry, ensure_ascii=False) + "\n")
            rows += table.num_rows
        if array is None:  # every input failed: the array has no width to take
            array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, 0))
        array.flush()
        del array
    return rows


def _write_parquet(tables: Iterable[pa.Table], partial: Path) -> int:
    """The parts' tables less their bookkeeping columns. The file's schema is the first answered part's: tables of
    errors only (whose task columns are missing, or as wide as nothing) wait for it, then take its columns as nulls."""
    import pyarrow.parquet as pq

    writer: Any = None
    waiting: list[pa.Table] = []
    rows = 0
    try:
        for table in tables:
            table = table.drop_columns([name for name in BOOKKEEPING_COLUMNS if name in table.schema.names])
            rows += table.num_rows
            if writer is None and table.column("error_code").null_count == 0:
                waiting.append(table)  # every row an error
                continue
            if writer is None:
                writer = pq.ParquetWriter(str(partial), table.schema)
            for ready in [*waiting, table]:
                writer.write_table(_conformed(ready, writer.schema))
            waiting.clear()
        if writer is None:  # every row of the job an error: the columns every row has
            writer = pq.ParquetWriter(str(partial), ERRORS_ONLY_SCHEMA)
            for ready in waiting:
                writer.write_table(_conformed(ready, writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return rows


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns: a column it lacks, or has only nulls in, as nulls of the schema's type."""
    columns = [
        table.column(field.name).cast(field.type)
        if field.name in table.schema.names and table.column(field.name).null_count < table.num_rows
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
