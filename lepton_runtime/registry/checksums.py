"""File checksums of the registry: streaming sha256 and the content hash of a set of files."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

# Bytes read per step while hashing; large enough to keep hashing near disk speed.
HASH_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    with path.open("rb") as stream:
        return sha256_stream(stream)[0]


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """The hex sha256 of what ``stream`` holds, read in chunks, and its size in bytes (a file, an object store's)."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(HASH_CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def content_sha256(file_hashes: Mapping[str, str]) -> str:
    """Return one hash for a set of files: sha256 over sorted ``relative_path:sha256`` lines."""
    lines = "".join(f"{path}:{digest}\n" for path, digest in sorted(file_hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()
