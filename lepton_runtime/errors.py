"""The one error tree of Lepton Runtime: every failure a caller may catch, with a stable code.

    LeptonError
    ├── InvalidInputError          invalid_input        bad texts, bad arguments, bad files
    │   └── InvalidReferenceError  invalid_reference    a model name or reference that is not allowed
    ├── ModelNotFoundError         unknown_model        no such model, version or alias
    ├── ModelIntegrityError        corrupt_model        a file does not match its manifest checksum
    ├── ProviderUnavailableError   provider_unavailable the asked execution provider is not active
    ├── ExportError                export_failed        the checkpoint could not be exported
    │   ├── ParityError            parity_failed        ONNX outputs differ from PyTorch
    │   └── QualityGateError       quality_gate_failed  a quantised variant lost too much accuracy
    ├── BrokerUnavailableError     broker_unavailable   Redis does not answer (transient)
    ├── JobNotFoundError           unknown_job          no job with that id (or it expired)
    ├── JobStateError              invalid_job_state    the job cannot do that in its state
    ├── JobTimeoutError            job_timeout          a wait ended before the job did
    ├── JobFailedError             job_failed           a task failed with an error that is not ours (a bug)
    ├── JobCancelledError          cancelled            the job was cancelled while it ran
    └── PoisonMessageError         worker_lost          a message kept killing the workers that ran it

Each class carries ``code`` (stable, for APIs and dead letters) and ``transient`` (whether a
retry can help). Messages say what was wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass


class LeptonError(Exception):
    """Raised for every failure that Lepton Runtime reports on purpose."""

    code = "lepton_error"
    transient = False


class InvalidInputError(LeptonError):
    """Raised when input (texts, arguments, files) breaks a documented rule."""

    code = "invalid_input"

    def __init__(self, message: str, *, issues: list[InputIssue] | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []


@dataclass(frozen=True)
class InputIssue:
    """One problem with one field or item: where it is, what is wrong, and the limit it broke."""

    field: str
    problem: str
    limit: str | None = None

    def __str__(self) -> str:
        limit = f" (limit: {self.limit})" if self.limit else ""
        return f"{self.field}: {self.problem}{limit}"


class InvalidReferenceError(InvalidInputError):
    """Raised when a model name, version or alias is malformed or would escape the registry."""

    code = "invalid_reference"


class ModelNotFoundError(LeptonError):
    """Raised when a model reference names nothing that is published."""

    code = "unknown_model"


class ModelIntegrityError(LeptonError):
    """Raised when a model file is missing or its sha256 differs from the manifest."""

    code = "corrupt_model"


class ProviderUnavailableError(LeptonError):
    """Raised when an execution provider was asked for but the session is not running on it."""

    code = "provider_unavailable"


class ExportError(LeptonError):
    """Raised when a checkpoint cannot be exported or published."""

    code = "export_failed"


class ParityError(ExportError):
    """Raised when the ONNX graph does not reproduce PyTorch within tolerance; nothing is published."""

    code = "parity_failed"


class QualityGateError(ExportError):
    """Raised when a quantised variant agrees too little with fp32 or loses too much accuracy."""

    code = "quality_gate_failed"

    def __init__(self, message: str, *, variant: str = "") -> None:
        super().__init__(message)
        self.variant = variant


class BrokerUnavailableError(LeptonError):
    """Raised when Redis (broker, result backend, job records) cannot be reached; a retry may help."""

    code = "broker_unavailable"
    transient = True


class JobNotFoundError(LeptonError):
    """Raised when a job id names no job (never submitted, or its records expired)."""

    code = "unknown_job"


class JobStateError(LeptonError):
    """Raised when a job cannot do what was asked in its current state (e.g. retry a cancelled job)."""

    code = "invalid_job_state"


class JobTimeoutError(LeptonError):
    """Raised when waiting for a job ends before the job does; the job itself goes on."""

    code = "job_timeout"


class JobFailedError(LeptonError):
    """Raised to a caller when its task failed with an unexpected error on the worker (a bug, dead-lettered)."""

    code = "job_failed"


class JobCancelledError(LeptonError):
    """Raised inside a running job when its cancel flag is seen; the job stops and publishes nothing."""

    code = "cancelled"


class PoisonMessageError(LeptonError):
    """Raised when a message was delivered too often without finishing: it is dead-lettered, not run."""

    code = "worker_lost"


__all__ = [
    "BrokerUnavailableError",
    "ExportError",
    "InputIssue",
    "InvalidInputError",
    "InvalidReferenceError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "JobTimeoutError",
    "LeptonError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ParityError",
    "PoisonMessageError",
    "ProviderUnavailableError",
    "QualityGateError",
]
