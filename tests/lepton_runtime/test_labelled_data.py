from pathlib import Path

import pytest

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.labelled_data import read_labelled, read_tagged


def test_reads_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": 2}\n')
    data = read_labelled(jsonl)
    assert data.texts == ["a", "b"] and data.labels == ["x", "2"]
    csv = tmp_path / "d.csv"
    csv.write_text('sentence,intent\n"hello, there",greet\nbye,leave\n')
    data = read_labelled(csv, text_field="sentence", label_field="intent")
    assert data.texts == ["hello, there", "bye"] and data.labels == ["greet", "leave"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "has no rows"),
        (b'{"text": "a"}\n{"label": "x"}\n', "line 2: field 'text' is missing"),
        (b'{"text": "a"}\nnot json\n', "line 2 is not valid JSON"),
        (b'["a", "b"]\n', "line 1 is a JSON list"),
        (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', "line 2 is not valid UTF-8"),
        (b'{"text": "a", "label": "x"}\n{"text": "b"}\n', "row 2 has no 'label'"),
        (b'{"text": "a"}\n{"text": "b \\ud800"}\n', "line 2: field 'text' holds a lone surrogate"),
        (b'{"text": "a", "label": "x\\udfff"}\n', "line 1: field 'label' holds a lone surrogate"),
    ],
)
def test_bad_files_name_the_line_and_the_problem(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        read_labelled(path)


def test_labels_can_be_required(tmp_path: Path) -> None:
    path = tmp_path / "unlabelled.jsonl"
    path.write_text('{"text": "a"}\n')
    with pytest.raises(InvalidInputError, match="labels are required"):
        read_labelled(path, require_labels=True)


def test_tagged_sentences_with_a_lone_surrogate_name_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "ner.jsonl"
    path.write_text('{"tokens": ["Paris"], "tags": ["B-LOC"]}\n{"tokens": ["\\ud83d"], "tags": ["O"]}\n')
    with pytest.raises(InvalidInputError, match="line 2: field 'tokens' holds a lone surrogate") as raised:
        read_tagged(path)
    assert raised.value.issues[0].field == "ner.jsonl:2.tokens"
