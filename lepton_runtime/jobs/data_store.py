"""The data store of bulk jobs: where each tenant's datasets are read and outputs written, and a job's inline texts
written as a dataset before it runs.

The store is a folder every worker shares (the embedded default, ``./lepton-data``) or an S3-compatible bucket
(``LEPTON_DATA_STORE=s3://bucket/prefix``, the server of ``LEPTON_S3_ENDPOINT_URL``, credentials from the standard
AWS variables, never from a request). Each tenant owns ``<store>/tenants/<tenant>/``: its inline inputs are written
under ``inputs/``, its outputs default to ``outputs/<job>/``, and over HTTP a location must lie inside it.

Inline texts are written as JSON lines (any JSON value: a text that is not a string fails alone, in its row, as it
always did), and the producer notes the byte offset of every ``chunk_size``-th line as it writes, so their splits
are exact and know their first row: no planning read.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import fsspec
from fsspec.implementations.local import LocalFileSystem

from lepton_runtime import unicode_text
from lepton_runtime.errors import DataStoreUnavailableError, ForbiddenError, InputIssue, InvalidInputError
from lepton_runtime.jobs.datasets import DatasetFile, Split

S3_SCHEME = "s3://"
# What an S3 client waits for a connection and for an answer, and how often it tries, before the chunk is retried
# later instead.
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10
ATTEMPTS = 2
TENANTS_FOLDER = "tenants"
INPUTS_FOLDER = "inputs"
OUTPUTS_FOLDER = "outputs"
# What a store operation raises when the store is out of reach (s3fs wraps botocore's connection errors in OSError).
STORE_FAILURES: tuple[type[BaseException], ...] = (OSError, botocore.exceptions.BotoCoreError)


@dataclass(frozen=True)
class InlineDataset:
    """Inline texts written to the store: the file, its exact splits, its rows."""

    file: DatasetFile
    splits: list[Split]
    rows: int


class DataStore:
    """One data store: locations inside it, each tenant's part of it, and the options that open it."""

    def __init__(self, root: str, *, endpoint_url: str | None = None) -> None:
        self.remote = root.startswith(S3_SCHEME)
        if self.remote and not root[len(S3_SCHEME) :].strip("/"):
            raise ValueError(f"LEPTON_DATA_STORE: {root!r} is not s3://BUCKET[/PREFIX] or a folder")
        self.root = root.rstrip("/") if self.remote else os.path.abspath(os.path.expanduser(root))
        self.endpoint_url = endpoint_url

    def storage_options(self, location: str) -> dict[str, Any]:
        """What fsspec needs beside ``location`` to open it (the S3 server and its timeouts; nothing for a path)."""
        if not location.startswith(S3_SCHEME):
            return {}
        return {
            "endpoint_url": self.endpoint_url,
            "use_listings_cache": False,
            "config_kwargs": {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "read_timeout": READ_TIMEOUT_S,
                "retries": {"max_attempts": ATTEMPTS},
            },
        }

    def filesystem(self, location: str) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(location, **self.storage_options(location))
        return fs, path

    # -- places ----------------------------------------------------------------------------------
    def tenant_root(self, tenant: str) -> str:
        return f"{self.root}/{TENANTS_FOLDER}/{tenant}"

    def inline_input(self, tenant: str, job_id: str) -> str:
        return f"{self.tenant_root(tenant)}/{INPUTS_FOLDER}/{job_id}.jsonl"

    def default_output(self, tenant: str, job_id: str) -> str:
        return f"{self.tenant_root(tenant)}/{OUTPUTS_FOLDER}/{job_id}"

    def resolve(self, location: str, tenant: str, *, field: str, confined: bool) -> str:
        """``location`` as the workers open it: a path relative to the tenant's part of the store is taken there.
        ``confined`` (the HTTP API): it must lie inside the tenant's part of the store (ForbiddenError naming it)."""
        if not isinstance(location, str) or not location.strip():
            raise InvalidInputError(f"{field}: give a location in the data store", issues=[InputIssue(field, "empty")])
        if ".." in location.replace("\\", "/").split("/"):
            raise InvalidInputError(
                f"{field}: {location!r} climbs out of its folder with '..'; name the location itself",
                issues=[InputIssue(field, "'..' in the location")],
            )
        absolute = location.startswith(S3_SCHEME) or "://" in location or os.path.isabs(location)
        if not absolute and (confined or self.remote):
            location = f"{self.tenant_root(tenant)}/{location.lstrip('./')}"
        elif not absolute:
            location = os.path.abspath(location)
        if confined and not self.inside(location, self.tenant_root(tenant)):
            raise ForbiddenError(
                f"{field}: {location!r} is outside tenant {tenant!r}'s part of the data store; give a location under "
                f"{self.tenant_root(tenant)}/ (or one relative to it)"
            )
        return location

    @staticmethod
    def inside(location: str, prefix: str) -> bool:
        """Whether ``location`` is ``prefix`` or lies under it (same scheme, paths compared normalised)."""

        def parts(text: str) -> tuple[str, str]:
            scheme, _, path = text.rpartition("://")
            return scheme, posixpath.normpath("/" + path.strip("/"))

        (scheme, path), (prefix_scheme, prefix_path) = parts(location), parts(prefix)
        return scheme == prefix_scheme and (path == prefix_path or path.startswith(prefix_path.rstrip("/") + "/"))

    # -- inline texts ------------------------------------------------------------------------------
    def write_items(
        self, location: str, items: Iterable[tuple[str, Any]], chunk_size: int, *, source: str = "texts"
    ) -> InlineDataset:
        """Write ``(id, text)`` items as JSON lines at ``location`` (whole or not at all), one split per
        ``chunk_size`` rows; InvalidInputError naming ``source`` when there is none."""
        fs, path = self.filesystem(location)
        splits: list[Split] = []
        rows = offset = start = 0
        scratch = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            if isinstance(fs, LocalFileSystem):
                fs.makedirs(posixpath.dirname(path), exist_ok=True)
            with fs.open(scratch, "wb") as stream:
                for item_id, text in items:
                    line = (unicode_text.dumps({"id": item_id, "text": text}) + "\n").encode()
                    stream.write(line)
                    offset += len(line)
                    rows += 1
                    if rows % chunk_size == 0:
                        splits.append(Split(0, start, offset, first_row=rows - chunk_size))
                        start = offset
            if rows % chunk_size:
                splits.append(Split(0, start, offset, first_row=rows - rows % chunk_size))
            if rows:
                fs.mv(scratch, path)
        except STORE_FAILURES as error:
            raise unreachable(self.root, error) from error
        finally:
            with contextlib.suppress(*STORE_FAILURES):
                if fs.exists(scratch):
                    fs.rm(scratch)
        if not rows:
            raise InvalidInputError(
                f"{source}: no texts to classify; give at least one", issues=[InputIssue(source, "empty")]
            )
        return InlineDataset(DatasetFile(path, "jsonl", None, offset), splits, rows)


@contextlib.contextmanager
def store_errors(root: str) -> Iterator[None]:
    """What a store operation's failure means: a missing file is the input's fault (InvalidInputError, permanent);
    anything else that fails to reach the store is an outage (DataStoreUnavailableError, transient)."""
    try:
        yield
    except FileNotFoundError as error:
        raise InvalidInputError(
            f"{error.filename or error}: not in the data store any more (removed or moved after the job was "
            "submitted); put it back, or submit the job again"
        ) from error
    except STORE_FAILURES as error:
        raise unreachable(root, error) from error


def unreachable(root: str, error: BaseException) -> DataStoreUnavailableError:
    return DataStoreUnavailableError(
        f"the data store {root} does not answer ({type(error).__name__}: {str(error)[:200]}); the work is retried "
        "when it answers: check LEPTON_DATA_STORE and LEPTON_S3_ENDPOINT_URL"
    )


def files_json(files: list[DatasetFile]) -> str:
    """A dataset's files as the job record keeps them (so a worker opens them without listing the store)."""
    return json.dumps([[file.path, file.format, file.compression, file.size_bytes] for file in files])


def files_from_json(raw: str) -> list[DatasetFile]:
    return [DatasetFile(path, kind, compression, int(size)) for path, kind, compression, size in json.loads(raw)]
