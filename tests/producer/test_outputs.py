"""Bulk output files from a job's tables (a part per chunk, as workers write them through the task's spec): each
format keeps every row once, in order, with errors in place, whatever the task; a chunk that failed whole (an
error table) takes its place, also first; a format that cannot hold a task's rows is refused and leaves no file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.jobs.output_rows import error_table, part_table, with_ids
from lepton_runtime.prediction import Embedding, Entities, Entity, ItemError, Prediction, Provenance
from lepton_runtime.tasks import SPECS, task_spec
from producer.outputs import check_output_file, write_output

MODEL = Provenance("m", 1, "0" * 64, "fp32", "fp32", "CPU")
FAILED = {"code": "worker_lost", "message": "the chunk failed"}


def result(task: str, index: int, vectors: np.ndarray) -> Any:
    """A result of ``task`` for row ``index`` (every fourth row an error)."""
    if index % 4 == 1:
        return ItemError(index, "invalid_input", "text: empty")
    if task == "embedding":
        return Embedding(vectors[index], MODEL)
    if task == "token-classification":
        return Entities([Entity(0, 3, "PER", 0.5, "Zoë")] if index % 2 else [], MODEL)
    label = "positive" if index % 3 else "negative"
    return Prediction(label, 0.5 + index / 1000, {label: 0.5 + index / 1000}, MODEL)


def job_tables(task: str, parts: int = 3, rows_per_part: int = 10, failed_first: bool = False) -> list[pa.Table]:
    """A job's tables as BulkData.tables gives them; ``failed_first``: the first chunk failed whole."""
    vectors = np.random.default_rng(0).normal(size=(parts * rows_per_part, 8)).astype(np.float32)
    tables = []
    for part in range(parts):
        rows = range(part * rows_per_part, (part + 1) * rows_per_part)
        ids = [f"r{i}" for i in rows]
        if failed_first and part == 0:
            table = error_table(ids, list(rows), FAILED)
        else:
            results = [result(task, i, vectors) for i in rows]
            table = part_table(task_spec(task), ids, list(rows), results, MODEL)
        tables.append(with_ids(table, part * rows_per_part))
    return tables


@pytest.mark.parametrize("task", sorted(SPECS))
@pytest.mark.parametrize("failed_first", [False, True])
def test_every_tasks_rows_keep_their_order_and_errors_in_jsonl_and_parquet(
    task: str, failed_first: bool, tmp_path: Path
) -> None:
    tables = job_tables(task, failed_first=failed_first)
    assert write_output(iter(tables), tmp_path / "out.jsonl", 30) == 30
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [f"r{i}" for i in range(30)]
    assert lines[13]["error"]["code"] == "invalid_input" and lines[15]["model"]["model"] == "m"
    assert (lines[0].get("error") == FAILED) is failed_first

    assert write_output(iter(tables), tmp_path / "out.parquet", 30) == 30
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("id").to_pylist() == [f"r{i}" for i in range(30)]
    assert "position" not in table.schema.names and "model_sha256" not in table.schema.names
    first_codes = ["worker_lost"] * 2 if failed_first else [None, "invalid_input"]
    assert table.column("error_code").to_pylist()[:2] == first_codes
    assert json.loads(table.schema.metadata[b"lepton.model"])["model"] == "m"
    task_columns = set(table.schema.names) - {"id", "truncated", "error_code", "error_message"}
    assert task_columns == set(task_spec(task).part_columns([]))
    # what the parquet file holds for an answered row is what its JSON line says
    row = table.slice(15, 1).to_pylist()[0]
    for name in task_columns:
        if name == "entities":
            assert row[name] == lines[15][name] == [{"start": 0, "end": 3, "label": "PER", "score": 0.5, "text": "Zoë"}]
        else:
            assert row[name] == pytest.approx(lines[15][name], abs=1e-6)


def test_vectors_go_to_npy_with_ids_beside_and_to_json_lines_as_numbers(tmp_path: Path) -> None:
    tables = job_tables("embedding", failed_first=True)
    vectors = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    assert write_output(iter(tables), tmp_path / "out.npy", 30) == 30
    array = np.load(tmp_path / "out.npy")
    assert np.isnan(array[:10]).all() and np.isnan(array[13]).all()  # a failed chunk, then a failed row
    assert np.array_equal(array[12], vectors[12]) and np.array_equal(array[28], vectors[28])
    ids = [json.loads(line) for line in (tmp_path / "out.ids.jsonl").read_text().splitlines()]
    assert [entry["id"] for entry in ids] == [f"r{i}" for i in range(30)]
    assert ids[13]["error"]["code"] == "invalid_input" and "error" not in ids[12]
    write_output(iter(tables), tmp_path / "out.jsonl", 30)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert np.array_equal(np.asarray(lines[12]["embedding"], dtype=np.float32), vectors[12])


def test_a_job_whose_every_row_failed_still_writes_every_row(tmp_path: Path) -> None:
    tables = [with_ids(error_table([None] * 5, [None] * 5, FAILED), 0)]
    assert write_output(iter(tables), tmp_path / "out.parquet", 5) == 5
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("id").to_pylist() == ["0", "1", "2", "3", "4"]  # known by their positions
    assert set(table.column("error_code").to_pylist()) == {"worker_lost"}
    assert write_output(iter(tables), tmp_path / "out.npy", 5) == 5 and np.load(tmp_path / "out.npy").shape == (5, 0)


@pytest.mark.parametrize("task", sorted(name for name, spec in SPECS.items() if not spec.gives_vectors))
def test_npy_refuses_a_task_without_vectors_before_the_job_and_after_it_leaving_nothing(
    task: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match=rf"labels\.npy: a \.npy file holds vectors, and {task} gives none"):
        check_output_file(tmp_path / "labels.npy", task_spec(task))  # at submit: before anything runs
    with pytest.raises(InvalidInputError, match=rf"\.npy file holds vectors.*\({task}\).*\.jsonl or \.parquet"):
        write_output(iter(job_tables(task)), tmp_path / "labels.npy", 30)
    assert list(tmp_path.iterdir()) == []
    check_output_file(tmp_path / "labels.parquet", task_spec(task))


@pytest.mark.parametrize("task", sorted(SPECS))
def test_a_part_whose_every_text_failed_is_written_and_read_for_every_task(task: str, tmp_path: Path) -> None:
    failed = [ItemError(index, "invalid_input", "text: empty") for index in range(4)]
    first = with_ids(part_table(task_spec(task), [None] * 4, [0, 1, 2, 3], failed, MODEL), 0)
    rest = job_tables(task, parts=1)[0].set_column(0, "id", pa.array([f"r{i}" for i in range(4, 14)]))
    assert write_output(iter([first, rest]), tmp_path / "out.parquet", 14) == 14
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("id").to_pylist()[:5] == ["0", "1", "2", "3", "r4"]
    assert table.column("error_code").to_pylist()[:4] == ["invalid_input"] * 4
    assert table.column("error_code").to_pylist()[4] is None
