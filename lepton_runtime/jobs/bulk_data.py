"""A bulk job's rows in the data store: a chunk's texts read from its split where it runs, its output part written
once, the output committed with its manifest, and every row read back in input order.

Redis holds none of them (jobs/store.py keeps the bookkeeping): a worker reads its split straight from the store and
writes ``part-NNNNNN.parquet`` beside the others (jobs/parts.py: created once, so a redelivered chunk never leaves a
second part), and the worker that finishes the job's last chunk commits ``_manifest.json``; a reader that finds a
succeeded job without one commits it (the same content: a commit is created once).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow as pa

from lepton_runtime.errors import ChunkNotRunError, JobCancelledError, JobStateError
from lepton_runtime.jobs.data_store import DataStore, store_errors
from lepton_runtime.jobs.datasets import Dataset
from lepton_runtime.jobs.output_rows import error_table, json_lines, with_ids
from lepton_runtime.jobs.parts import JobOutput, OutputManifest, PartInfo, part_name
from lepton_runtime.jobs.schemas import RESULT_STATES
from lepton_runtime.jobs.store import ChunkWork, JobInput, JobStore, PartRecord

logger = logging.getLogger(__name__)

# Datasets a process keeps open (their file lists and filesystems), most recently used kept.
OPEN_DATASETS = 8
T = TypeVar("T")


class BulkData:
    """The data store as bulk jobs use it: ``read_chunk`` and ``write_part`` in workers, ``commit`` once a job
    succeeds, ``rows`` for whoever reads a finished job."""

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self._datasets: OrderedDict[tuple[str, tuple[str, ...]], Dataset] = OrderedDict()

    # -- workers ---------------------------------------------------------------------------------
    def read_chunk(self, work: ChunkWork) -> tuple[list[str | None], list[int | None], list[Any]]:
        """A chunk's ids, input positions and texts, in input order (an id the dataset lacks is its position;
        both are None where a line file's rows before the split are not counted yet)."""
        rows = self._call(lambda: self._dataset(work.input).read(work.split, text_field=work.input.text_field,
                                                                   id_field=work.input.id_field))  # fmt: skip
        first = work.split.first_row
        positions = [None if first is None else first + index for index in range(len(rows))]
        ids = [
            row_id if row_id is not None else (None if p is None else str(p))
            for (row_id, _), p in zip(rows, positions, strict=True)
        ]
        return ids, positions, [text for _, text in rows]

    def write_part(self, work: ChunkWork, table: pa.Table) -> PartRecord:
        """Write the chunk's part unless a delivery before wrote it; the part that stands either way."""
        info = self._call(lambda: self._output(work.output).write_part(work.chunk, table))
        return PartRecord(work.chunk, info.rows, info.size_bytes, info.sha256)

    # -- once a job succeeded ----------------------------------------------------------------------
    def commit(self, jobs: JobStore, job_id: str) -> OutputManifest:
        """Commit a succeeded job's manifest from the parts its chunks recorded (created once: a second commit
        returns the first); the inline texts written for the job are removed then."""
        status = jobs.status(job_id)
        if status.state != "succeeded":
            raise JobStateError(f"job {job_id} is {status.state}; only a succeeded job's output is committed")
        parts = [
            PartInfo(part.chunk, part_name(part.chunk), part.rows, part.size_bytes, part.sha256)
            for part in jobs.parts(job_id).values()
        ]
        details = {"model_version": status.model_version, "model_sha256": status.model_sha256, "input": status.input,
                   "source": status.source, "tenant": status.tenant}  # fmt: skip
        output = self._output(status.output or "")
        manifest = self._call(lambda: output.commit(job_id, parts, details))
        job_input, _ = jobs.job_input(job_id)
        if job_input.inline:  # every row is in the output now: the texts written for the job go
            self._call(lambda: self._remove(job_input.location))
        return manifest

    def _remove(self, location: str) -> None:
        """Remove a file that another commit (the last worker's, a reader's) may be removing at the same moment."""
        fs, path = self.store.filesystem(location)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path)

    def manifest(self, jobs: JobStore, job_id: str) -> OutputManifest:
        """The committed manifest of a succeeded job (committed now if its last worker did not live to)."""
        status = jobs.status(job_id)
        try:
            return self._call(lambda: self._output(status.output or "").manifest())
        except JobStateError:
            if status.state != "succeeded":
                raise
            return self.commit(jobs, job_id)

    # -- readers -------------------------------------------------------------------------------------
    def rows(self, jobs: JobStore, job_id: str) -> Iterator[str]:
        """The output rows as JSON lines in input order, once the job has finished (``tables``, line by line:
        output_rows.json_lines)."""
        for table in self.tables(jobs, job_id):
            for batch in table.to_batches():
                yield from json_lines(batch, table.schema.metadata)

    def tables(self, jobs: JobStore, job_id: str) -> Iterator[pa.Table]:
        """The output in input order, a table per chunk with every row's id, once the job has finished: a succeeded
        job's parts through its manifest (each checked against its sha256); a failed or cancelled job's parts as
        recorded, and for a chunk that failed or never ran its texts' ids with one error each, so every input has its
        row."""
        status = jobs.status(job_id)
        if status.state not in RESULT_STATES:
            raise JobStateError(
                f"job {job_id} is {status.state}; results stream once it has succeeded, failed or been cancelled "
                f"(`lepton jobs status {job_id}`)"
            )
        output = self._output(status.output or "")
        position = 0
        if status.state == "succeeded":
            for part in self.manifest(jobs, job_id).parts:
                yield with_ids(self._read_part(output, part), position)
                position += part.rows
            return
        recorded = jobs.parts(job_id)
        job_input, _ = jobs.job_input(job_id)  # read once: a chunk without a part reads its ids from the input
        for chunk in range(status.total_chunks):
            if (record := recorded.get(chunk)) is not None:
                part = PartInfo(chunk, part_name(chunk), record.rows, record.size_bytes, record.sha256)
                table = self._read_part(output, part)
            else:
                detail = jobs.chunk_error(job_id, chunk) or (
                    {"code": JobCancelledError.code, "message": "the job was cancelled before this chunk ran"}
                    if status.state == "cancelled"
                    else {"code": ChunkNotRunError.code, "message": "the chunk never ran"}
                )
                work = ChunkWork(job_id, chunk, "", "", job_input, jobs.split(job_id, chunk), status.output or "")
                ids, positions, _ = self.read_chunk(work)
                table = error_table(ids, positions, detail)
            yield with_ids(table, position)
            position += table.num_rows

    # -- internals -----------------------------------------------------------------------------------
    def _read_part(self, output: JobOutput, part: PartInfo) -> pa.Table:
        return self._call(lambda: output.read_part(part))

    def _dataset(self, job_input: JobInput) -> Dataset:
        key = (job_input.location, tuple(file.path for file in job_input.files))
        if (dataset := self._datasets.get(key)) is None:
            fs, _ = self.store.filesystem(job_input.location)
            dataset = self._datasets[key] = Dataset(fs, job_input.files, job_input.location)
            while len(self._datasets) > OPEN_DATASETS:
                self._datasets.popitem(last=False)
        self._datasets.move_to_end(key)
        return dataset

    def _output(self, location: str) -> JobOutput:
        fs, path = self.store.filesystem(location)
        return JobOutput(fs, path)

    def _call(self, action: Callable[[], T]) -> T:
        """Run a store operation (``store_errors`` says what its failure means)."""
        with store_errors(self.store.root):
            return action()
