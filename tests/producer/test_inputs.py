"""Bulk input files: JSONL, CSV and plain lines as (id, text), with errors that name the line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_runtime.constants import MAX_LINE_BYTES
from lepton_runtime.errors import InvalidInputError, TooLargeError
from producer.inputs import items_from_texts, read_items


def test_each_format_gives_ids_and_texts(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"id": 7, "text": "seven"}\n\n{"text": "no id"}\n', encoding="utf-8")
    assert list(read_items(jsonl)) == [("7", "seven"), ("3", "no id")]
    csv_file = tmp_path / "b.csv"
    csv_file.write_text('review,stars\n"good, really",5\nbad,1\n', encoding="utf-8")
    assert list(read_items(csv_file, text_field="review")) == [("2", "good, really"), ("3", "bad")]
    plain = tmp_path / "c.txt"
    plain.write_bytes("\ufefffirst\r\n\nthird\n".encode())
    assert list(read_items(plain)) == [("1", "first"), ("3", "third")]
    assert list(items_from_texts(["x", "y"])) == [("0", "x"), ("1", "y")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"text": "ok"}\n{"text": 3}\n', r"line 2: field 'text' is a JSON int"),
        ("bad.jsonl", b'{"text": "ok"}\n{"body": "x"}\n', r"line 2: field 'text' is missing"),
        ("bad.jsonl", b'{"text": "ok"}\n[1, 2]\n', r"line 2 is a JSON list"),
        ("bad.jsonl", b'{"text": "ok"}\n{oops\n', r"line 2 is not valid JSON"),
        ("bad.txt", b"fine\nbroken \xff byte\n", r"line 2 is not valid UTF-8"),
        ("bad.csv", b"body\nx\n", r"no 'text' column"),
    ],
)
def test_bad_files_are_refused_naming_the_line(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        list(read_items(path))


def test_a_string_is_not_a_list_of_texts(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="list of strings"):
        items_from_texts("just one string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no such file"):
        read_items(tmp_path / "missing.jsonl")


def test_a_line_over_the_limit_is_refused_naming_it_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge-line.jsonl"
    with path.open("w") as handle:  # a 50 MB line: one text 500 times the longest allowed
        handle.write('{"text": "fine"}\n{"text": "' + "x" * 50_000_000 + '"}\n')
    with pytest.raises(TooLargeError, match=r"line 2 is over the limit of 1,048,576 bytes") as raised:
        list(read_items(path))
    assert [issue.field for issue in raised.value.issues] == ["huge-line.jsonl:2"]
    unending = tmp_path / "no-newline.txt"
    unending.write_bytes(b"y" * (MAX_LINE_BYTES + 10))  # one line, no end: read no further than the limit
    with pytest.raises(TooLargeError, match="line 1 is over"):
        list(read_items(unending))
