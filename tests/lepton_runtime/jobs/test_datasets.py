"""Datasets in a data store, planned from metadata and read split by split: every row exactly once, in file order,
whatever the format, the compression, the cut or the store (a folder, or a real S3-compatible server)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.jobs.datasets import Dataset, Split
from lepton_runtime.labelled_data import LabelledTexts
from tests.store_fixtures import ObjectStore


def rows_of(dataset: Dataset, rows_per_split: int, **fields: str) -> tuple[list[Split], list[tuple[str | None, str]]]:
    splits = list(dataset.plan(rows_per_split))
    return splits, [row for split in splits for row in dataset.read(split, **fields)]


@pytest.fixture
def texts(banking: LabelledTexts) -> list[str]:
    """Real queries, some with commas, quotes and non-ASCII letters added, so that CSV quoting is exercised."""
    return [f'{text}, "quoted" – {i}' if i % 7 == 0 else text for i, text in enumerate(banking.texts[:1000])]


def test_a_json_lines_file_cut_in_byte_ranges_gives_every_line_once_in_order(tmp_path: Path, texts: list[str]) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))
    )
    splits, rows = rows_of(Dataset.open(str(path)), rows_per_split=37)
    assert len(splits) > 20, "cut into many ranges"
    assert rows == [(f"q{i}", t) for i, t in enumerate(texts)]
    for rows_per_split in (1, 2, 999, 5000):  # every cut, even one byte range per line or one for all
        assert rows_of(Dataset.open(str(path)), rows_per_split)[1] == rows


def test_a_parquet_file_is_planned_from_its_row_groups(tmp_path: Path, texts: list[str]) -> None:
    table = pa.table({"text": texts, "id": [f"q{i}" for i in range(len(texts))]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=300)
    pq.write_table(table.slice(0, 10).drop(["id"]), tmp_path / "b.parquet")
    splits, rows = rows_of(Dataset.open(str(tmp_path)), rows_per_split=128)
    assert [(s.row_group, s.stop - s.start) for s in splits[:4]] == [(0, 128), (0, 128), (0, 44), (1, 128)]
    assert [s.first_row for s in splits][-1] == len(texts), "the second file's rows follow the first's"
    assert rows == [(f"q{i}", t) for i, t in enumerate(texts)] + [(None, t) for t in texts[:10]]


def test_csv_with_a_header_and_quoted_commas_is_cut_and_read_back(tmp_path: Path, texts: list[str]) -> None:
    import csv

    path = tmp_path / "questions.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["question", "ref"])
        writer.writerows([t, str(i)] for i, t in enumerate(texts))
    _, rows = rows_of(Dataset.open(str(path)), rows_per_split=50, text_field="question", id_field="ref")
    assert rows == [(str(i), t) for i, t in enumerate(texts)]
    with pytest.raises(InvalidInputError, match=r"no 'text' column .*question, ref.*--text-field"):
        rows_of(Dataset.open(str(path)), rows_per_split=50)


def test_a_compressed_file_is_one_split(tmp_path: Path, texts: list[str]) -> None:
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(lines))
    with pa.CompressedOutputStream(str(tmp_path / "b.jsonl.zst"), "zstd") as stream:
        stream.write(lines)
    splits, rows = rows_of(Dataset.open(f"{tmp_path}/*.jsonl.*"), rows_per_split=10)
    assert len(splits) == 2 and rows == [(None, t) for t in texts] * 2


def test_a_location_names_its_files_in_path_order_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    for name, rows in (("part-1.jsonl", ["b"]), ("part-0.jsonl", ["a"]), ("_SUCCESS", []), (".part-0.crc", [])):
        (tmp_path / name).write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    assert rows_of(Dataset.open(str(tmp_path)), 10)[1] == [(None, "a"), (None, "b")]
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(InvalidInputError, match=r"notes\.docx.*not a dataset file"):
        Dataset.open(str(tmp_path))
    with pytest.raises(InvalidInputError, match="nothing there"):
        Dataset.open(str(tmp_path / "missing"))
    (tmp_path / "long.jsonl").write_bytes(b"x" * (2 * 1024 * 1024))
    with pytest.raises(InvalidInputError, match="over 1,048,576 bytes"):
        rows_of(Dataset.open(str(tmp_path / "long.jsonl")), 10)


def test_a_dataset_in_an_s3_bucket_reads_as_one_in_a_folder(
    object_store: ObjectStore, tmp_path: Path, texts: list[str]
) -> None:
    local = tmp_path / "corpus"
    local.mkdir()
    pq.write_table(pa.table({"text": texts[:500]}), local / "0.parquet", row_group_size=100)
    (local / "1.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[500:]))
    store = {"client_kwargs": {"endpoint_url": object_store.endpoint_url}}
    fsspec.filesystem("s3", **store).put(
        f"{local}/", f"{object_store.url.removeprefix('s3://')}/corpus/", recursive=True
    )
    remote = Dataset.open(f"{object_store.url}/corpus/", **store)
    assert rows_of(remote, 64)[1] == rows_of(Dataset.open(str(local)), 64)[1] == [(None, t) for t in texts]


def test_a_missing_text_column_is_named_at_submit_from_footers_headers_and_first_lines(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["1"], "body": ["a text"]}), tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("id,body\n1,a text\n")
    (tmp_path / "c.jsonl").write_text('{"id": 1, "body": "a text"}\n')
    for name in ("a.parquet", "b.csv", "c.jsonl"):
        dataset = Dataset.open(str(tmp_path / name))
        dataset.check_text_field("body")
        with pytest.raises(InvalidInputError, match=rf"{name}: no 'text' column \(columns: .*body"):
            dataset.check_text_field("text")
    (tmp_path / "d.jsonl").write_text("not json\n")
    with pytest.raises(InvalidInputError, match="first line is not JSON"):
        Dataset.open(str(tmp_path / "d.jsonl")).check_text_field("text")
