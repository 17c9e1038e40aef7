"""Uploaded files of the HTTP API: copied to a temporary file while counted, refused past the size limit."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from starlette.datastructures import UploadFile

from lepton_runtime.errors import LeptonError, TooLargeError

UPLOAD_COPY_CHUNK_BYTES = 1024 * 1024


class uploaded:
    """An upload copied to a temporary file (kept with its suffix, which names its format) and removed after;
    more than ``max_bytes`` is refused with 413 even when the client sent no Content-Length."""

    def __init__(self, upload: UploadFile, max_bytes: int) -> None:
        self.upload = upload
        self.max_bytes = max_bytes
        self.directory = Path(tempfile.mkdtemp(prefix="lepton-upload-"))
        self.name = Path(upload.filename or "upload.txt").name or "upload.txt"
        self.path = self.directory / self.name

    def __enter__(self) -> Path:
        path = self.path
        copied = 0
        with path.open("wb") as handle:
            while block := self.upload.file.read(UPLOAD_COPY_CHUNK_BYTES):
                copied += len(block)
                if copied > self.max_bytes:
                    shutil.rmtree(self.directory, ignore_errors=True)
                    raise TooLargeError(
                        f"file: the upload is over the limit of {self.max_bytes:,} bytes"
                        " (LEPTON_API_MAX_BODY_BYTES); split the file"
                    )
                handle.write(block)
        return path

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        if isinstance(error, LeptonError) and error.args:  # name the upload as the client named it
            error.args = (str(error.args[0]).replace(str(self.path), self.name), *error.args[1:])
