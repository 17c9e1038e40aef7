"""Bulk datasets in a data store (a local folder, or an S3-compatible bucket through fsspec): the files a location
names, the splits planned from their metadata alone, and the rows of one split read back where it runs.

A location is one file, a prefix (every dataset file under it) or a glob; files are taken in path order, rows in
file order. Planning reads no text:

- a Parquet file's footer gives its row groups and their row counts, so its splits know their global row numbers;
  a split is a run of rows inside one row group (a row group is decoded whole: write datasets with row groups of
  about a chunk, ``row_group_size=10_000``, and a split costs what it holds);
- a JSON-lines or CSV file is cut into byte ranges; a range owns the lines that start inside it (its reader skips
  the partial line at its start and finishes the one that crosses its end), so every line is read exactly once. The
  size of a range comes from the mean line length of the file's first bytes; its rows are counted when it is read;
- a compressed file (``.gz``, ``.zst``) cannot be cut without reading it all: it is one split.

Ids come from the id column when the file has one; else a row is known by its place, which a reader gives as
``None`` and the job numbers (Parquet splits know their first global row; a line file's rows are numbered once the
rows before them are counted).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.jobs.parts import ARROW_THREADLESS

DatasetFormat = Literal["parquet", "jsonl", "csv"]
FORMAT_OF_SUFFIX: dict[str, DatasetFormat] = {
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
COMPRESSION_OF_SUFFIX = {".gz": "gzip", ".zst": "zstd"}
# Bytes read from the start of a line file to estimate its mean line length (and so the size of a range).
SAMPLE_BYTES = 64 * 1024
# Bytes a line file is read in.
READ_BUFFER_BYTES = 1024 * 1024
# A line longer than this is refused naming its file and byte (a file without newlines would be read whole).
MAX_LINE_BYTES = 1024 * 1024
_GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset: its path as the store names it, its format and compression, its size."""

    path: str
    format: DatasetFormat
    compression: str | None
    size_bytes: int


@dataclass(frozen=True)
class Split:
    """A piece of one file that one chunk reads: rows ``[start, stop)`` of a Parquet file (inside row group
    ``row_group``), or the lines starting in bytes ``[start, stop)`` of a line file. ``first_row``: the global row
    number of its first row, where the metadata knows it."""

    file: int
    start: int
    stop: int
    row_group: int | None = None
    first_row: int | None = None


class Dataset:
    """The files of one location in one store, planned into splits and read split by split."""

    def __init__(self, fs: fsspec.AbstractFileSystem, files: list[DatasetFile], location: str) -> None:
        self.fs = fs
        self.files = files
        self.location = location
        self._footers: dict[str, pq.FileMetaData] = {}  # path -> its Parquet footer, read once (files never change)

    @classmethod
    def open(cls, location: str, **storage_options: Any) -> Dataset:
        """The dataset at ``location`` (``s3://bucket/prefix/``, ``s3://bucket/corpus/*.parquet``, a local path);
        InvalidInputError naming the location when it holds no dataset file, or a file of an unknown format."""
        fs, path = fsspec.core.url_to_fs(location, **storage_options)
        if any(character in path for character in _GLOB_CHARACTERS):
            paths = sorted(fs.glob(path))
        elif fs.isdir(path):
            paths = sorted(fs.find(path))
        elif fs.exists(path):
            paths = [path]
        else:
            raise InvalidInputError(
                f"{location}: nothing there; give a file, a prefix or a glob in the data store",
                issues=[InputIssue("source", "not found")],
            )
        files = [_dataset_file(fs, found, location) for found in paths if not _hidden(found)]
        if not files:
            raise InvalidInputError(
                f"{location}: no dataset file there (Parquet, JSON lines or CSV, optionally .gz or .zst)",
                issues=[InputIssue("source", "no dataset file")],
            )
        return cls(fs, files, location)

    def plan(self, rows_per_split: int) -> Iterator[Split]:
        """The splits of every file in order, about ``rows_per_split`` rows each, from metadata alone."""
        if rows_per_split < 1:
            raise ValueError(f"rows_per_split must be at least 1, not {rows_per_split}")
        first_row: int | None = 0
        for index, file in enumerate(self.files):
            if file.format == "parquet" and file.compression is None:
                metadata = self._footer(file)
                row = 0
                for group in range(metadata.num_row_groups):
                    rows = metadata.row_group(group).num_rows
                    for start in range(row, row + rows, rows_per_split):
                        stop = min(start + rows_per_split, row + rows)
                        known = first_row + start if first_row is not None else None
                        yield Split(index, start, stop, row_group=group, first_row=known)
                    row += rows
                first_row = first_row + row if first_row is not None else None
                continue
            if file.compression is not None or file.size_bytes == 0:
                yield Split(index, 0, file.size_bytes, first_row=first_row)
            else:
                range_bytes = max(1, rows_per_split * self._mean_line_bytes(file))
                for start in range(0, file.size_bytes, range_bytes):
                    yield Split(index, start, min(start + range_bytes, file.size_bytes), first_row=first_row)
            first_row = None  # the rows of a line file are counted when read

    def check_text_field(self, text_field: str) -> None:
        """InvalidInputError naming the file when a file's columns (a Parquet footer, a CSV header) or its first JSON
        line lack ``text_field``: found at submit, not by every chunk of a running job."""
        for file in self.files:
            if file.format == "parquet" and file.compression is None:
                names = self._footer(file).schema.to_arrow_schema().names
            elif file.format == "csv":
                names = self._csv_header(file)
            else:
                with self.fs.open(file.path, "rb") as raw:
                    stream: Any = pa.CompressedInputStream(raw, file.compression) if file.compression else raw
                    first = _read_line(io.BufferedReader(stream), file, 0)
                names = list(_json_row_fields(file, first))
            if text_field not in names:
                raise InvalidInputError(
                    f"{file.path}: no {text_field!r} column (columns: {', '.join(map(str, names)) or 'none'}); name "
                    "the text column (--text-field)",
                    issues=[InputIssue("text_field", f"not a column of {file.path}")],
                )

    def read(self, split: Split, *, text_field: str = "text", id_field: str = "id") -> list[tuple[str | None, str]]:
        """The ``(id or None, text)`` rows of one split, in file order; InvalidInputError naming the file and the
        row for a row without its text field."""
        file = self.files[split.file]
        if file.format == "parquet":
            return self._parquet_rows(file, split, text_field, id_field)
        lines = self._lines(file, split)
        if file.format == "csv":
            return _csv_rows(file, lines, self._csv_header(file), text_field, id_field, header_in=split.start == 0)
        return [_json_row(file, line, text_field, id_field) for line in lines]

    # -- internals -------------------------------------------------------------------------------
    def _footer(self, file: DatasetFile) -> pq.FileMetaData:
        """A Parquet file's footer (row groups, schema), read from the store once per dataset: a worker that runs
        many of a file's splits, or a submit that checks and then plans it, reads it one time."""
        if (footer := self._footers.get(file.path)) is None:
            with self.fs.open(file.path) as opened:
                footer = self._footers[file.path] = pq.ParquetFile(opened).metadata
        return footer

    def _parquet_rows(
        self, file: DatasetFile, split: Split, text_field: str, id_field: str
    ) -> list[tuple[str | None, str]]:
        footer = self._footer(file)
        names = footer.schema.to_arrow_schema().names
        if text_field not in names:
            raise InvalidInputError(
                f"{file.path}: no {text_field!r} column (columns: {', '.join(names)}); name the text column"
                " (--text-field)",
                issues=[InputIssue("text_field", f"not a column of {file.path}")],
            )
        columns = [text_field, *([id_field] if id_field in names else [])]
        assert split.row_group is not None
        group_start = sum(footer.row_group(g).num_rows for g in range(split.row_group))
        with self.fs.open(file.path) as opened:  # the footer is known: only the row group's bytes are read
            table = pq.ParquetFile(opened, metadata=footer, **ARROW_THREADLESS).read_row_group(
                split.row_group, columns=columns, use_threads=False
            )  # no Arrow thread pool (jobs/parts.py)
        table = table.slice(split.start - group_start, split.stop - split.start)
        texts = table.column(text_field).to_pylist()
        ids = [None if value is None else str(value) for value in table.column(id_field).to_pylist()] if (
            id_field in names
        ) else [None] * len(texts)  # fmt: skip
        return list(zip(ids, texts, strict=True))

    def _lines(self, file: DatasetFile, split: Split) -> list[bytes]:
        """The lines that start in the split's byte range (all of a compressed file), without their newlines."""
        with self.fs.open(file.path, "rb") as opened:
            if file.compression is not None:
                stream: Any = pa.CompressedInputStream(opened, file.compression)
                return [line for line in _bounded_lines(stream, file, 0) if line.strip()]
            raw = io.BufferedReader(opened, buffer_size=READ_BUFFER_BYTES)  # readline with a limit, on any store
            if split.start > 0:
                raw.seek(split.start - 1)
                _read_line(raw, file, split.start - 1)  # the rest of the line that started before the range
            lines = []
            position = raw.tell()
            while position < split.stop:
                line = _read_line(raw, file, position)
                if not line:
                    break
                position += len(line)
                if line.strip():
                    lines.append(line.rstrip(b"\r\n"))
            return lines

    def _csv_header(self, file: DatasetFile) -> list[str]:
        with self.fs.open(file.path, "rb") as raw:
            stream: Any = pa.CompressedInputStream(raw, file.compression) if file.compression else raw
            first = _read_line(io.BufferedReader(stream), file, 0)
        return next(csv.reader([first.decode("utf-8-sig")]), [])

    def _mean_line_bytes(self, file: DatasetFile) -> int:
        with self.fs.open(file.path, "rb") as raw:
            sample: bytes = raw.read(SAMPLE_BYTES)
        lines = sample.count(b"\n")
        return max(1, len(sample) // max(lines, 1))


def _dataset_file(fs: fsspec.AbstractFileSystem, path: str, location: str) -> DatasetFile:
    name = path.rsplit("/", 1)[-1].lower()
    compression = next((kind for suffix, kind in COMPRESSION_OF_SUFFIX.items() if name.endswith(suffix)), None)
    if compression is not None:
        name = name.rsplit(".", 1)[0]
    kind = next((kind for suffix, kind in FORMAT_OF_SUFFIX.items() if name.endswith(suffix)), None)
    if kind is None:
        raise InvalidInputError(
            f"{path} (under {location}): not a dataset file; use .parquet, .jsonl, .ndjson or .csv (optionally .gz"
            " or .zst), or narrow the location with a glob",
            issues=[InputIssue("source", f"unknown format: {path}")],
        )
    return DatasetFile(path, kind, compression, int(fs.info(path)["size"]))


def _hidden(path: str) -> bool:
    """Markers and scratch files a store or a writer leaves beside the data (``_SUCCESS``, ``.part-0.crc``)."""
    return path.rsplit("/", 1)[-1].startswith(("_", "."))


def _read_line(stream: Any, file: DatasetFile, position: int) -> bytes:
    line: bytes = stream.readline(MAX_LINE_BYTES + 1)
    if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
        raise InvalidInputError(
            f"{file.path}: the line at byte {position:,} is over {MAX_LINE_BYTES:,} bytes; split it, or check that"
            " the file has newlines",
            issues=[InputIssue(file.path, "line too long")],
        )
    return line


def _bounded_lines(stream: Any, file: DatasetFile, position: int) -> Iterator[bytes]:
    reader = io.BufferedReader(stream)
    while line := _read_line(reader, file, position):
        position += len(line)
        yield line.rstrip(b"\r\n")


def _text(file: DatasetFile, line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            f"{file.path}: a line is not valid UTF-8 (byte {error.start} of the line); re-encode the file as UTF-8",
            issues=[InputIssue(file.path, "invalid UTF-8")],
        ) from None


def _json_row(file: DatasetFile, line: bytes, text_field: str, id_field: str) -> tuple[str | None, str]:
    try:
        row = json.loads(_text(file, line))
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{file.path}: a line is not JSON ({error.msg}); each line must be one object", issues=[]
        ) from None
    if not isinstance(row, dict) or text_field not in row:
        raise InvalidInputError(
            f"{file.path}: a line has no {text_field!r} field ({_text(file, line)[:80]!r}); name the text field"
            " (--text-field)",
            issues=[InputIssue("text_field", f"missing in {file.path}")],
        )
    identity = row.get(id_field)
    return (None if identity is None else str(identity), row[text_field])


def _json_row_fields(file: DatasetFile, line: bytes) -> list[str]:
    """The fields of a JSON-lines file's first row (none for an empty file)."""
    if not line.strip():
        return []
    try:
        row = json.loads(_text(file, line))
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{file.path}: the first line is not JSON ({error.msg}); each line must be one object",
            issues=[InputIssue(file.path, "not JSON lines")],
        ) from None
    return [str(name) for name in row] if isinstance(row, dict) else []


def _csv_rows(
    file: DatasetFile, lines: list[bytes], header: list[str], text_field: str, id_field: str, *, header_in: bool
) -> list[tuple[str | None, str]]:
    if text_field not in header:
        raise InvalidInputError(
            f"{file.path}: no {text_field!r} column (columns: {', '.join(header)}); name the text column"
            " (--text-field)",
            issues=[InputIssue("text_field", f"not a column of {file.path}")],
        )
    records = list(csv.reader(_text(file, line) for line in lines))
    if header_in and records:
        records = records[1:]  # the header line is the first range's
    text_at, id_at = header.index(text_field), header.index(id_field) if id_field in header else None
    rows = []
    for record in records:
        if len(record) != len(header):
            raise InvalidInputError(
                f"{file.path}: a row has {len(record)} fields where the header has {len(header)} ({record[:3]!r}...);"
                " a quoted field holding a newline cannot be split: compress the file (.gz) or write it as Parquet",
                issues=[InputIssue(file.path, "fields do not match the header")],
            )
        rows.append((record[id_at] if id_at is not None else None, record[text_at]))
    return rows
