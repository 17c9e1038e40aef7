"""What a bulk job reads: a dataset location planned from its metadata, or inline texts (a list, a local file)
written to the data store first, so that every job then follows the one path (workers read splits from the store).

    a list of texts                          inline: ids are their indices
    a local .jsonl / .csv / .txt file        inline, read as ``lepton submit`` always read one (ids: the id field,
                                             else the line number; bad lines refused naming the line)
    s3://..., a folder, a glob, a .parquet   a dataset: planned from metadata (Parquet row groups, byte ranges of
    file, a .gz / .zst file                  line files), never read here; ids: the id column, else the row number
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.jobs.data_store import S3_SCHEME, DataStore, store_errors
from lepton_runtime.jobs.datasets import COMPRESSION_OF_SUFFIX, Dataset, Split
from lepton_runtime.jobs.store import JobInput
from producer.inputs import items_from_texts, read_items

_GLOB_CHARACTERS = "*?["


@dataclass
class PlannedInput:
    """A job's input as the store will record it: where, its splits (lazy for a dataset), and its rows if known."""

    job_input: JobInput
    splits: Iterator[Split]
    total_texts: int | None
    label: str
    written: str | None = None  # the inline file written for this job (removed if the job is not created)


def is_dataset_location(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names a dataset the workers read where it is (else a local file read here)."""
    text = str(source)
    if text.startswith(S3_SCHEME) or any(character in text for character in _GLOB_CHARACTERS):
        return True
    path = Path(text)
    suffixes = "".join(path.suffixes[-2:]).lower()
    return path.is_dir() or suffixes.endswith(".parquet") or path.suffix.lower() in COMPRESSION_OF_SUFFIX


def plan_input(
    store: DataStore,
    source: str | os.PathLike[str] | Sequence[Any],
    *,
    job_id: str,
    tenant: str,
    chunk_size: int,
    text_field: str,
    id_field: str,
    confined: bool,
    label: str | None = None,
    ids: Sequence[Any] | None = None,
) -> PlannedInput:
    """Plan ``source`` into chunks of about ``chunk_size`` rows (InvalidInputError naming what is wrong).
    ``label``: what the job's record calls a local file (an upload's own name, not the temporary path the API saved
    it under). ``ids``: one per text of a list (default: their positions).

    ``confined`` (the HTTP API): a ``str`` is always a location in the tenant's part of the data store, never a path
    of this machine; a ``Path`` is a file the API itself received (an upload)."""
    if isinstance(source, str | os.PathLike) and (
        is_dataset_location(source) or (confined and isinstance(source, str))
    ):
        location = store.resolve(str(source), tenant, field="source", confined=confined)
        if store.remote and not location.startswith(S3_SCHEME):
            raise InvalidInputError(
                f"source: {source} is on this machine, and the workers read datasets from {store.root}; copy it "
                "there (or submit a single .jsonl/.csv file, which is uploaded)",
                issues=[InputIssue("source", "not in the data store")],
            )
        with store_errors(store.root):
            dataset = Dataset.open(location, **store.storage_options(location))
            dataset.check_text_field(text_field)
        job_input = JobInput(location, dataset.files, text_field, id_field)
        return PlannedInput(job_input, _planned(store, dataset, chunk_size), None, location)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        items: Any = read_items(path, text_field=text_field, id_field=id_field)
        label = field = label or str(path)
    else:
        items, label, field = items_from_texts(source, ids), "<list>", "texts"
    location = store.inline_input(tenant, job_id)
    inline = store.write_items(location, items, chunk_size, source=field)
    job_input = JobInput(location, [inline.file], "text", "id", inline=True)
    return PlannedInput(job_input, iter(inline.splits), inline.rows, label, written=location)


def _planned(store: DataStore, dataset: Dataset, chunk_size: int) -> Iterator[Split]:
    """The dataset's splits as the job store takes them, the store's failures said as ours."""
    with store_errors(store.root):
        yield from dataset.plan(chunk_size)


def output_location(store: DataStore, given: str | None, *, job_id: str, tenant: str, confined: bool) -> str:
    """Where the job writes its parts: ``given`` (a folder that holds no file yet), else the tenant's default."""
    if given is None:
        return store.default_output(tenant, job_id)
    location = store.resolve(given, tenant, field="out", confined=confined)
    fs, path = store.filesystem(location)
    with store_errors(store.root):
        taken = fs.exists(path) and (not fs.isdir(path) or fs.ls(path, detail=False))
    if taken:
        raise InvalidInputError(
            f"out: {given} already holds files; a job writes its parts into a folder of its own: give a new one",
            issues=[InputIssue("out", "not empty")],
        )
    return location


def remove_written(store: DataStore, planned: PlannedInput | None) -> None:
    """Remove the inline file written for a job that was not created (refused, or the key's job existed)."""
    if planned is not None and planned.written is not None:
        fs, path = store.filesystem(planned.written)
        if fs.exists(path):
            fs.rm(path)
