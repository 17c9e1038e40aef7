"""What producers and workers say about a job: its state, counters and progress (JSON-ready models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ChunkState = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class ChunkFailure(BaseModel):
    """Why one chunk failed (its last error)."""

    chunk: int
    code: str
    message: str


class Progress(BaseModel):
    """How far a job is: texts done of the total, the rate so far and the time left at that rate."""

    done: int
    total: int
    texts_per_s: float | None = Field(default=None, description="Texts per second since the first chunk started.")
    eta_s: float | None = Field(default=None, description="Seconds left at the current rate.")


class JobStatus(BaseModel):
    """A bulk job as its record in Redis says now."""

    id: str
    state: JobState
    model: str = Field(description="The reference as submitted, e.g. 'sentiment' or 'sentiment@production'.")
    model_version: str = Field(description="The exact version resolved once at submit time, e.g. 'sentiment@3'.")
    model_sha256: str
    source: str = Field(description="Where the texts came from: a file path or '<list>'.")
    total_texts: int
    total_chunks: int
    chunk_size: int
    done_texts: int
    done_chunks: int
    failed_chunks: int
    cancelled_chunks: int = 0
    error_items: int = Field(description="Texts answered with an error row (invalid input), not a prediction.")
    chunk_runs: int = Field(description="Chunk executions started, redeliveries and retries included.")
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress
    failures: list[ChunkFailure] = Field(default_factory=list, description="The failed chunks and why.")

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES
