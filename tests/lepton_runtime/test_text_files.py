"""Text files as the CLI reads them: a CSV without the text column says which columns it has and how to name one."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.text_files import csv_rows


def test_a_csv_without_the_text_column_lists_its_columns_and_the_option_that_names_one(tmp_path: Path) -> None:
    path = tmp_path / "questions.csv"
    path.write_text("id,question\n1,where is my card?\n")
    with pytest.raises(InvalidInputError) as raised:
        list(csv_rows(path, "text"))
    message = str(raised.value)
    assert "(columns: id, question)" in message and "--text-field" in message
    assert [row["question"] for _, row in csv_rows(path, "question")] == ["where is my card?"]
