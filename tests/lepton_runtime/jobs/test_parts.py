"""A job's output parts, written once whoever writes them, on a folder and on a real S3-compatible server; the
manifest that commits them; readers that check what they read."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lepton_runtime.errors import JobStateError, ModelIntegrityError
from lepton_runtime.jobs.parts import MANIFEST_FILE, JobOutput, part_name
from tests.store_fixtures import ObjectStore


def rows(chunk: int, label: str) -> pa.Table:
    return pa.table({"id": [f"{chunk}-{i}" for i in range(3)], "position": [chunk * 3 + i for i in range(3)],
                     "label": [label] * 3})  # fmt: skip


@pytest.fixture(params=["folder", "bucket"])
def output(request: pytest.FixtureRequest, tmp_path: Path) -> JobOutput:
    if request.param == "folder":
        return JobOutput.open(str(tmp_path / "out"))
    store: ObjectStore = request.getfixturevalue("object_store")
    return JobOutput.open(f"{store.url}/out/", client_kwargs={"endpoint_url": store.endpoint_url})


def test_a_chunk_written_twice_leaves_one_part_the_first(output: JobOutput) -> None:
    first = output.write_part(0, rows(0, "first"))
    again = output.write_part(0, rows(0, "redelivery"))  # a redelivered chunk, its answers a little different
    assert again == first and first.rows == 3
    assert [name.rsplit("/", 1)[-1] for name in output.fs.ls(output.path, detail=False)] == [part_name(0)]
    parts = [first, output.write_part(1, rows(1, "x"))]
    manifest = output.commit("job-1", parts, {"model_version": "tiny@1"})
    assert manifest.rows == 6 and output.commit("job-1", parts[:1] + parts[1:]) == manifest
    labels = [label for batch in output.batches() for label in batch.column("label").to_pylist()]
    assert labels == ["first"] * 3 + ["x"] * 3


def test_a_commit_needs_every_chunk_and_a_reader_checks_every_part(output: JobOutput) -> None:
    parts = [output.write_part(chunk, rows(chunk, "a")) for chunk in (0, 2)]
    with pytest.raises(JobStateError, match=r"chunks \[1\]"):
        output.commit("job-2", parts)
    with pytest.raises(JobStateError, match=MANIFEST_FILE):
        output.manifest()
    parts.append(output.write_part(1, rows(1, "a")))
    output.commit("job-2", parts)
    output.fs.pipe_file(f"{output.path}/{part_name(1)}", output.fs.cat_file(f"{output.path}/{part_name(0)}"))
    with pytest.raises(ModelIntegrityError, match="sha256 differs"):
        list(output.batches())


def test_pyarrow_reads_a_committed_folder_as_one_dataset_in_chunk_order(tmp_path: Path) -> None:
    output = JobOutput.open(str(tmp_path / "out"))
    parts = [output.write_part(chunk, rows(chunk, "a")) for chunk in (2, 0, 1)]
    output.commit("job-3", parts)
    table = pq.read_table(tmp_path / "out")  # _manifest.json is not data: pyarrow leaves out files starting with _
    assert table.column("position").to_pylist() == list(range(9))


def _write(path: str, chunk: int, label: str) -> None:
    JobOutput.open(path).write_part(chunk, rows(chunk, label))


def test_racing_writers_of_one_chunk_leave_one_whole_part_and_no_scratch(tmp_path: Path) -> None:
    path = str(tmp_path / "out")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write, args=(path, 0, f"w{i}")) for i in range(6)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == [part_name(0)]
    assert len(set(pq.read_table(tmp_path / "out" / part_name(0)).column("label").to_pylist())) == 1
