"""A bulk job's output in the data store: one Parquet part per chunk, written exactly once, and the manifest that
commits the parts (jobs/bulk_data.py uses them).

A part has a name its chunk decides (``part-000042.parquet``) and is created only if absent: on an object store a
conditional create (``If-None-Match``), on a folder a complete file linked into place. A redelivered or retried
chunk that finds its part written leaves it as it is and reports the part that stands, so a job never has two parts
for a chunk nor a half-written one. A finished job commits ``_manifest.json`` once: the parts in chunk order with
their rows and sha256, and what the job ran. Readers go through the manifest and check every part they read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from lepton_runtime.errors import JobStateError, ModelIntegrityError

MANIFEST_FILE = "_manifest.json"
# Reading a chunk-sized Parquet file gains nothing from Arrow's thread pools, and starting them costs: a worker
# process is one thread by design (processes x threads <= cores), and a process that exits with them started may
# abort in their teardown ("terminate called without an active exception", apache/arrow#34314): `lepton submit`
# did, after writing its output. pq.read_table starts them whatever it is told; ParquetFile with these does not.
ARROW_THREADLESS = {"pre_buffer": False}
# Digits of a part's chunk number in its name: names sort in chunk order up to a million chunks.
PART_DIGITS = 6


def part_name(chunk: int) -> str:
    return f"part-{chunk:0{PART_DIGITS}d}.parquet"


@dataclass(frozen=True)
class PartInfo:
    """One written part: its chunk, file name, rows, size and sha256."""

    chunk: int
    name: str
    rows: int
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class OutputManifest:
    """What a finished job committed: its parts in chunk order and what ran."""

    job_id: str
    parts: list[PartInfo]
    rows: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, raw: str | bytes) -> OutputManifest:
        data = json.loads(raw)
        parts = [PartInfo(**part) for part in data.pop("parts")]
        return cls(parts=parts, **data)


class JobOutput:
    """The output folder of one job, ``<location>/``: parts written once, a manifest committed once."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        self.fs = fs
        self.path = path.rstrip("/")

    @classmethod
    def open(cls, location: str, **storage_options: Any) -> JobOutput:
        fs, path = fsspec.core.url_to_fs(location, **storage_options)
        return cls(fs, path)

    def write_part(self, chunk: int, table: pa.Table) -> PartInfo:
        """Write chunk ``chunk``'s rows unless its part exists; the part that stands either way."""
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        body = sink.getvalue()
        target = f"{self.path}/{part_name(chunk)}"
        if self._create(target, body):
            return PartInfo(chunk, part_name(chunk), table.num_rows, len(body), hashlib.sha256(body).hexdigest())
        return self.part_info(chunk)  # another delivery wrote it first: its part is the chunk's

    def part_info(self, chunk: int) -> PartInfo:
        body = self.fs.cat_file(f"{self.path}/{part_name(chunk)}")
        rows = pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
        return PartInfo(chunk, part_name(chunk), rows, len(body), hashlib.sha256(body).hexdigest())

    def commit(self, job_id: str, parts: Sequence[PartInfo], details: dict[str, Any] | None = None) -> OutputManifest:
        """Commit the job's parts (one per chunk, chunks 0..n-1): the manifest is created once; a second commit
        returns the first one's manifest."""
        ordered = sorted(parts, key=lambda part: part.chunk)
        if [part.chunk for part in ordered] != list(range(len(ordered))):
            missing = sorted(set(range(len(ordered))) - {part.chunk for part in ordered})
            raise JobStateError(f"job {job_id}: cannot commit its output without the parts of chunks {missing[:10]}")
        manifest = OutputManifest(job_id, ordered, sum(part.rows for part in ordered), details or {})
        if self._create(f"{self.path}/{MANIFEST_FILE}", manifest.to_json().encode()):
            return manifest
        return self.manifest()

    def manifest(self) -> OutputManifest:
        try:
            return OutputManifest.from_json(self.fs.cat_file(f"{self.path}/{MANIFEST_FILE}"))
        except FileNotFoundError:
            raise JobStateError(
                f"{self.path} has no {MANIFEST_FILE}: the job has not finished (or wrote elsewhere); read it when done"
            ) from None

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The committed output in chunk order, each part checked against the manifest's sha256."""
        for part in self.manifest().parts:
            yield from self.read_part(part).to_batches()

    def read_part(self, part: PartInfo) -> pa.Table:
        """One part, checked against the sha256 its chunk recorded."""
        body = self.fs.cat_file(f"{self.path}/{part.name}")
        if hashlib.sha256(body).hexdigest() != part.sha256:
            raise ModelIntegrityError(
                f"{self.path}/{part.name}: sha256 differs from the one its chunk recorded (changed or corrupt after it"
                " was written); restore the file, or submit the job again"
            )
        return pq.ParquetFile(io.BytesIO(body), **ARROW_THREADLESS).read(use_threads=False)

    def _create(self, target: str, body: bytes) -> bool:
        """Create ``target`` holding ``body`` unless it exists (then False), never leaving it half written."""
        if isinstance(self.fs, LocalFileSystem):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            temporary = f"{os.path.dirname(target)}/.{os.path.basename(target)}.{uuid.uuid4().hex}"
            with open(temporary, "wb") as stream:
                stream.write(body)
                stream.flush()
                os.fsync(stream.fileno())
            try:
                os.link(temporary, target)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(temporary)
        try:
            self.fs.pipe_file(target, body, mode="create")
            return True
        except FileExistsError:
            return False
