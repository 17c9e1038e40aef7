"""Bulk job output files, by the file's extension: JSON lines for any task, ``.npy`` and ``.parquet`` for vectors
(and Parquet for a classifier's labels too). Rows are written as they stream from the job's parts, so a 100,000-text job
never holds its output in memory, and the file gets its name only when whole.

- ``.jsonl`` (or any other extension): one JSON object per input, in input order; an embedding row carries
  ``"embedding": [floats]``.
- ``.npy``: a float32 array with one row per input in input order (NaN for an input that failed), and beside it
  ``NAME.ids.jsonl`` with each row's ``id`` (and ``error``), since an array holds no ids.
- ``.parquet``: columns ``id``, then ``embedding`` (fixed-size float32 lists), ``label``/``score`` or
  ``entities`` (lists of start, end, label, score, text), then ``truncated``, ``error_code``,
  ``error_message``; the model's provenance in the file's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.prediction import VECTOR_ENCODING, decode_vector

OUTPUT_FORMATS = (".jsonl", ".npy", ".parquet")
# Rows per Parquet row group (and per write): bounded memory whatever the job's size.
PARQUET_ROWS_PER_GROUP = 8192


def write_output(lines: Iterable[str], target: Path, total_rows: int) -> int:
    """Write a job's output rows (JSON lines, input order) to ``target`` in the format its extension names;
    returns the rows written."""
    suffix = target.suffix.lower()
    with _replaced_when_whole(target) as partial:
        if suffix == ".npy":
            return _write_npy(lines, partial, target, total_rows)
        if suffix == ".parquet":
            return _write_parquet(lines, partial)
        return _write_jsonl(lines, partial)


@contextmanager
def _replaced_when_whole(target: Path) -> Iterator[Path]:
    partial = target.with_name(f".{target.name}.partial")
    try:
        yield partial
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _write_jsonl(lines: Iterable[str], partial: Path) -> int:
    rows = 0
    with partial.open("w", encoding="utf-8") as handle:
        for line in lines:
            if f'"encoding": "{VECTOR_ENCODING}"' in line:
                row = json.loads(line)
                row["embedding"] = decode_vector(row.pop("vector")).tolist()
                del row["encoding"]
                line = json.dumps(row, ensure_ascii=False)
            handle.write(line + "\n")
            rows += 1
    return rows


def _write_npy(lines: Iterable[str], partial: Path, target: Path, total_rows: int) -> int:
    """Rows go into a memory-mapped .npy as they come; those before the first vector (errors) wait in a list."""
    ids_target = target.with_name(f"{target.stem}.ids.jsonl")
    array: np.memmap[Any, Any] | None = None
    pending_errors: list[int] = []
    rows = 0
    with _replaced_when_whole(ids_target) as ids_partial, ids_partial.open("w", encoding="utf-8") as ids:
        for index, line in enumerate(lines):
            row = json.loads(line)
            entry: dict[str, Any] = {"id": row["id"]}
            if "error" in row:
                entry["error"] = row["error"]
                if array is None:
                    pending_errors.append(index)
                else:
                    array[index] = np.nan
            elif "vector" in row:
                vector = decode_vector(row["vector"])
                if array is None:
                    array = np.lib.format.open_memmap(
                        partial, mode="w+", dtype=np.float32, shape=(total_rows, len(vector))
                    )
                    array[pending_errors] = np.nan
                array[index] = vector
            else:
                raise InvalidInputError(
                    f"{target.name}: a .npy file holds vectors, and this job's model is not an embedding model;"
                    " write .jsonl or .parquet instead"
                )
            ids.write(json.dumps(entry, ensure_ascii=False) + "\n")
            rows += 1
        if array is None:  # every input failed: the array has no width to take
            array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, 0))
        array.flush()
        del array
    return rows


def _write_parquet(lines: Iterable[str], partial: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: Any = None
    rows = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer
        table = _parquet_table(pa, batch)
        if writer is None:
            provenance = next((row["model"] for row in batch if "model" in row), None)
            schema = table.schema.with_metadata({"lepton.model": json.dumps(provenance)} if provenance else {})
            writer = pq.ParquetWriter(str(partial), schema)
        writer.write_table(table.cast(writer.schema))
        batch.clear()

    try:
        for line in lines:
            batch.append(json.loads(line))
            rows += 1
            if len(batch) >= PARQUET_ROWS_PER_GROUP:
                flush()
        if batch or writer is None:
            flush()
    finally:
        if writer is not None:
            writer.close()
    return rows


def _parquet_table(pa: Any, rows: list[dict[str, Any]]) -> Any:
    errors = [row.get("error") or {} for row in rows]
    columns: dict[str, Any] = {"id": pa.array([row["id"] for row in rows], pa.string())}
    vectors = [decode_vector(row["vector"]) if "vector" in row else None for row in rows]
    width = next((len(vector) for vector in vectors if vector is not None), None)
    if any("entities" in row for row in rows):
        entity = pa.struct(
            [("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
             ("text", pa.string())]
        )  # fmt: skip
        columns["entities"] = pa.array([row.get("entities") for row in rows], pa.list_(entity))
    elif width is not None or not any("label" in row for row in rows):
        flat = np.concatenate(
            [vector if vector is not None else np.full(width or 0, np.nan, np.float32) for vector in vectors]
        )
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(
            pa.array(flat, pa.float32()), width or 0, mask=pa.array([vector is None for vector in vectors])
        )
    else:
        columns["label"] = pa.array([row.get("label") for row in rows], pa.string())
        columns["score"] = pa.array([row.get("score") for row in rows], pa.float64())
    columns["truncated"] = pa.array([bool(row.get("truncated", False)) for row in rows], pa.bool_())
    columns["error_code"] = pa.array([error.get("code") for error in errors], pa.string())
    columns["error_message"] = pa.array([error.get("message") for error in errors], pa.string())
    return pa.table(columns)
