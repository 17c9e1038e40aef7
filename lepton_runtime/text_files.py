"""Text files read as a stream: UTF-8 checked line by line, JSONL objects, CSV rows; errors name the line."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lepton_runtime.constants import MAX_LINE_BYTES
from lepton_runtime.errors import InputIssue, InvalidInputError, TooLargeError


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decoded lines (newline kept, a leading BOM dropped) with their 1-based number; a line longer than
    ``MAX_LINE_BYTES`` is refused as soon as that much of it is read (a file with no newline is not read whole)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file", issues=[InputIssue("path", "file not found")]) from None
    with handle:
        number = 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise TooLargeError(
                    f"{path}: line {number} is over the limit of {MAX_LINE_BYTES:,} bytes for one line (one text "
                    "is at most LEPTON_MAX_TEXT_CHARS characters); split the line or shorten its text",
                    issues=[InputIssue(f"{path.name}:{number}", f"over {MAX_LINE_BYTES:,} bytes")],
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InvalidInputError(
                    f"{path}: line {number} is not valid UTF-8 (byte {error.start} of the line); "
                    "re-encode the file as UTF-8",
                    issues=[InputIssue(f"{path.name}:{number}", "invalid UTF-8")],
                ) from None
            yield number, line.removeprefix("\ufeff") if number == 1 else line


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """One JSON object per non-blank line, with its line number."""
    for number, line in lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise InvalidInputError(f"{path}: line {number} is a JSON {type(row).__name__}; expected an object")
        yield number, row


def csv_rows(path: Path, required_column: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV file with a header that has ``required_column``, with the line each row ends on."""
    reader = csv.DictReader(line for _, line in lines(path))
    if reader.fieldnames is None or required_column not in reader.fieldnames:
        raise InvalidInputError(
            f"{path}: no {required_column!r} column (columns: {', '.join(reader.fieldnames or []) or 'none'}); name"
            " the column that holds the text with --text-field (text_field in the API)",
            issues=[InputIssue(f"{path.name}:1", f"missing column {required_column!r}")],
        )
    for row in reader:
        if row.get(required_column) is None:
            raise InvalidInputError(f"{path}: line {reader.line_num} has fewer columns than the header")
        yield reader.line_num, row
