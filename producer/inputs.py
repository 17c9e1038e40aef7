"""Texts of a bulk job read from a file as ``(id, text)`` pairs, streamed, with errors naming the line.

    .jsonl / .ndjson   one JSON object per line; the text in ``text_field``, an id in ``id_field`` if present
    .csv               a header row; the text in column ``text_field``, an id in column ``id_field`` if present
    anything else      plain text, one text per line (blank lines skipped)

Without an id the line number (1-based) is the id, so output rows can be matched to input lines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.text_files import csv_rows, jsonl_rows, lines
from lepton_runtime.unicode_text import surrogate_problem

JSONL_SUFFIXES = {".jsonl", ".ndjson"}


def items_from_texts(texts: Sequence[Any], ids: Sequence[Any] | None = None) -> Iterator[tuple[str, Any]]:
    """A list's texts with their ``ids`` (one string each, in order), else their index; their content is checked
    by the workers, item by item."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise InvalidInputError(f"texts: expected a list of strings, got {type(texts).__name__}")
    if ids is None:
        return ((str(index), text) for index, text in enumerate(texts))
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence) or len(ids) != len(texts):
        count = len(ids) if isinstance(ids, Sequence) else type(ids).__name__
        raise InvalidInputError(
            f"ids: {count} ids for {len(texts)} texts; give one id per text, in the texts' order (or none)",
            issues=[InputIssue("ids", f"expected {len(texts)} ids")],
        )
    for position, identity in enumerate(ids):
        if not isinstance(identity, str) or not identity:
            raise InvalidInputError(
                f"ids[{position}]: {identity!r} is not a non-empty string; ids are strings",
                issues=[InputIssue(f"ids.{position}", "not a non-empty string")],
            )
    return zip(ids, texts, strict=True)


def read_items(path: Path, *, text_field: str = "text", id_field: str = "id") -> Iterator[tuple[str, str]]:
    """Stream ``(id, text)`` from a JSONL, CSV or plain-text file; raise InvalidInputError naming the line."""
    if not path.is_file():  # checked now: the reading itself is lazy
        raise InvalidInputError(f"{path}: no such file", issues=[InputIssue("path", "file not found")])
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return _jsonl_items(path, text_field, id_field)
    if suffix == ".csv":
        return _csv_items(path, text_field, id_field)
    return _plain_items(path)


def _jsonl_items(path: Path, text_field: str, id_field: str) -> Iterator[tuple[str, str]]:
    for number, row in jsonl_rows(path):
        text = row.get(text_field)
        if not isinstance(text, str):
            problem = "is missing" if text is None else f"is a JSON {type(text).__name__}, not a string"
            raise InvalidInputError(
                f"{path}: line {number}: field {text_field!r} {problem}; every line needs a string "
                f"{text_field!r} (or choose the field with --text-field)",
                issues=[InputIssue(f"{path.name}:{number}.{text_field}", problem)],
            )
        yield _checked_id(path, number, id_field, str(row.get(id_field, number))), text


def _checked_id(path: Path, number: int, id_field: str, item_id: str) -> str:
    """An id goes into every output row as it is: one UTF-8 cannot encode is refused before anything is queued (a
    text that holds a lone surrogate is an item error instead, from the worker)."""
    if (problem := surrogate_problem(item_id)) is not None:
        raise InvalidInputError(
            f"{path}: line {number}: field {id_field!r} {problem}",
            issues=[InputIssue(f"{path.name}:{number}.{id_field}", "holds a lone surrogate")],
        )
    return item_id


def _csv_items(path: Path, text_field: str, id_field: str) -> Iterator[tuple[str, str]]:
    for number, row in csv_rows(path, text_field):
        yield str(row.get(id_field) or number), row[text_field]


def _plain_items(path: Path) -> Iterator[tuple[str, str]]:
    for number, line in lines(path):
        text = line.rstrip("\r\n")
        if text.strip():
            yield str(number), text
