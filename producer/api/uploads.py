"""Uploaded files of the HTTP API: copied to a temporary file named as the client named it (the body limit that
bounds them is the app's BodyLimit middleware)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from starlette.datastructures import UploadFile

from lepton_runtime.errors import LeptonError

UPLOAD_COPY_CHUNK_BYTES = 1024 * 1024


class uploaded:
    """An upload copied to a temporary file (kept with its suffix, which names its format) and removed after."""

    def __init__(self, upload: UploadFile) -> None:
        self.upload = upload
        self.directory = Path(tempfile.mkdtemp(prefix="lepton-upload-"))
        self.name = Path(upload.filename or "upload.txt").name or "upload.txt"
        self.path = self.directory / self.name

    def __enter__(self) -> Path:
        with self.path.open("wb") as handle:
            shutil.copyfileobj(self.upload.file, handle, UPLOAD_COPY_CHUNK_BYTES)
        return self.path

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        if isinstance(error, LeptonError) and error.args:  # name the upload as the client named it
            error.args = (str(error.args[0]).replace(str(self.path), self.name), *error.args[1:])
