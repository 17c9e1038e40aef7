"""Bulk jobs made by hand for tests of the job store and the task bodies: inline texts written to a data store in a
folder, and the job recorded over them, as a producer does (producer/bulk_sources.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lepton_runtime.jobs import JobStore
from lepton_runtime.jobs.data_store import DataStore
from lepton_runtime.jobs.store import JobInput


def inline_job(
    store: JobStore,
    data_root: Path,
    texts: Sequence[Any],
    *,
    chunk_size: int,
    model_version: str = "m@1",
    model_sha256: str = "abc",
    **options: Any,
) -> str:
    """A new job over ``texts`` (ids: their indices), its first window not yet taken."""
    data = DataStore(str(data_root))
    job_id = store.new_job_id()
    tenant = options.get("tenant", "default")
    items = ((str(index), text) for index, text in enumerate(texts))
    inline = data.write_items(data.inline_input(tenant, job_id), items, chunk_size)
    created_id, created = store.create(
        JobInput(inline.file.path, [inline.file], inline=True), inline.splits, model=model_version.split("@")[0],
        model_version=model_version, model_sha256=model_sha256, source="<list>",
        output=data.default_output(tenant, job_id), chunk_size=chunk_size, total_texts=inline.rows, job_id=job_id,
        **options,
    )  # fmt: skip
    assert created
    return created_id
