"""The manifest of a model version: what it is, where it came from, how it was checked, and every file's sha256."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from lepton_runtime.registry.checksums import sha256_file

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1

Precision = Literal["fp32", "int8", "fp16"]


class FileEntry(BaseModel):
    """One file of a version: its sha256 and size."""

    sha256: str
    size_bytes: int

    def matches(self, path: Path) -> bool:
        """Whether the file at ``path`` has this size and sha256."""
        return path.stat().st_size == self.size_bytes and sha256_file(path) == self.sha256


class VariantInfo(BaseModel):
    """One runnable ONNX graph of a version (fp32, int8 or fp16) and the gate it passed."""

    file: str
    precision: Precision
    verified: bool = Field(description="True only when its gate ran and passed.")
    gate: dict[str, Any] = Field(default_factory=dict, description="Figures of the gate that ran.")
    optimizations: list[str] = Field(default_factory=list)
    note: str | None = None


class Manifest(BaseModel):
    """Everything that describes one published version; written last, so a version without it is unfinished."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str
    version: int = 0
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    task: str = "text-classification"
    labels: list[str]
    max_sequence_length: int
    opset: int
    architecture: str | None = None
    num_attention_heads: int | None = None
    hidden_size: int | None = None
    input_names: list[str]
    source: dict[str, Any] = Field(default_factory=dict, description="Checkpoint path and its hash.")
    parity: dict[str, Any] = Field(default_factory=dict, description="fp32 against PyTorch.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Evaluation figures, if known.")
    variants: dict[str, VariantInfo]
    files: dict[str, FileEntry]
    content_sha256: str = ""

    def write(self, directory: Path) -> Path:
        """Write the manifest as ``manifest.json`` in ``directory`` and return its path."""
        path = directory / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """Read ``manifest.json`` from ``directory``."""
        return cls.model_validate_json((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
