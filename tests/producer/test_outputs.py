"""Bulk output files from streamed rows: each format keeps every row once, in order, with errors in place; a
format that cannot hold a task's rows is refused and leaves no file behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.prediction import VECTOR_ENCODING, encode_vector
from producer.outputs import PARQUET_ROWS_PER_GROUP, write_output

MODEL = {"model": "m", "version": 1, "sha256": "0" * 64, "variant": "fp32", "precision": "fp32", "provider": "CPU"}


def label_rows(count: int) -> list[str]:
    rows = [{"id": f"r{i}", "label": "positive" if i % 3 else "negative", "score": 0.5 + i / (4 * count),
             "model": MODEL} for i in range(count)]  # fmt: skip
    rows[1] = {"id": "r1", "error": {"code": "invalid_input", "message": "text: empty"}}
    return [json.dumps(row) for row in rows]


def vector_rows(count: int) -> tuple[list[str], np.ndarray]:
    vectors = np.random.default_rng(0).normal(size=(count, 8)).astype(np.float32)
    rows = [json.dumps({"id": f"v{i}", "vector": encode_vector(v), "encoding": VECTOR_ENCODING, "model": MODEL})
            for i, v in enumerate(vectors)]  # fmt: skip
    rows[0] = json.dumps({"id": "v0", "error": {"code": "invalid_input", "message": "text: empty"}})
    return rows, vectors


def test_a_classifiers_rows_become_parquet_columns_across_row_groups(tmp_path: Path) -> None:
    count = PARQUET_ROWS_PER_GROUP + 10  # two row groups
    assert write_output(iter(label_rows(count)), tmp_path / "labels.parquet", count) == count
    table = pq.read_table(tmp_path / "labels.parquet")
    assert table.column("id").to_pylist() == [f"r{i}" for i in range(count)]
    assert table.column("label").to_pylist()[:4] == ["negative", None, "positive", "negative"]
    assert table.column("error_code").to_pylist()[1] == "invalid_input"
    assert json.loads(table.schema.metadata[b"lepton.model"])["model"] == "m"


def test_vectors_go_to_npy_with_ids_beside_and_to_json_lines_as_numbers(tmp_path: Path) -> None:
    rows, vectors = vector_rows(50)
    assert write_output(iter(rows), tmp_path / "out.npy", 50) == 50
    array = np.load(tmp_path / "out.npy")
    assert np.isnan(array[0]).all() and np.array_equal(array[1:], vectors[1:])  # the first row failed
    ids = [json.loads(line) for line in (tmp_path / "out.ids.jsonl").read_text().splitlines()]
    assert [entry["id"] for entry in ids] == [f"v{i}" for i in range(50)] and "error" in ids[0]
    write_output(iter(rows), tmp_path / "out.jsonl", 50)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert np.array_equal(np.asarray(lines[3]["embedding"], dtype=np.float32), vectors[3])


def test_npy_refuses_a_classifiers_rows_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"\.npy file holds vectors.*\.jsonl or \.parquet"):
        write_output(iter(label_rows(5)), tmp_path / "labels.npy", 5)
    assert list(tmp_path.iterdir()) == []
