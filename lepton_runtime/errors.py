"""The one error tree of Lepton Runtime: every failure a caller may see, with a stable code and its HTTP status.

    LeptonError
    ├── InvalidInputError          invalid_input          422  bad texts, bad arguments, bad files
    │   ├── InvalidReferenceError  invalid_reference      422  a model name or reference that is not allowed
    │   ├── TooLargeError          too_large              413  over a size limit (texts, bytes)
    │   └── UnsupportedMediaError  unsupported_media_type 415  a body in a content type the route does not take
    ├── UnauthorizedError          unauthorized           401  no valid bearer token
    ├── ForbiddenError             forbidden              403  the token lacks the scope, or the model is another's
    ├── RouteNotFoundError         not_found              404  no such HTTP route
    ├── MethodNotAllowedError      method_not_allowed     405  the route exists, the method does not
    ├── ModelNotFoundError         unknown_model          404  no such model, version or alias
    ├── ModelStateError            invalid_model_state    409  the model cannot do that now (no earlier version...)
    ├── WrongTaskError             wrong_task             422  the model does another task than the one asked
    ├── ModelIntegrityError        corrupt_model          500  a file does not match its manifest checksum
    ├── ProviderUnavailableError   provider_unavailable   503  the asked execution provider is not active
    ├── ExportError                export_failed          500  the checkpoint could not be exported
    │   ├── ParityError            parity_failed          500  ONNX outputs differ from PyTorch
    │   └── QualityGateError       quality_gate_failed    500  a quantised variant lost too much accuracy
    ├── BrokerUnavailableError     broker_unavailable     503  Redis does not answer (transient)
    │   └── BrokerFullError        broker_full            507  Redis is at its maxmemory and refuses writes (transient)
    ├── ModelStoreUnavailableError store_unavailable      503  the object store does not answer (transient)
    │   └── DataStoreUnavailableError  data_store_unavailable 503  the bulk data store does not answer (transient)
    ├── QueueFullError             queue_full             429  a queue holds too many waiting messages (transient)
    │   └── QuotaExceededError     quota_exceeded         429  a tenant has its quota of waiting requests (transient)
    ├── FleetConflictError         fleet_conflict         409  `lepton up` would share a data folder or a port
    ├── JobNotFoundError           unknown_job            404  no job with that id (or it expired)
    ├── JobStateError              invalid_job_state      409  the job cannot do that in its state
    ├── JobTimeoutError            job_timeout            504  a wait ended before the job did
    ├── JobFailedError             job_failed             500  a task failed with an error that is not ours (a bug)
    ├── JobCancelledError          cancelled              409  the job was cancelled while it ran
    ├── ChunkNotRunError           not_run                409  a chunk of a finished job never ran (it was cancelled)
    ├── PoisonMessageError         worker_lost            500  a message kept killing the workers that ran it
    ├── TaskTimeLimitError         time_limit             500  a task ran past its time limit
    ├── ExpiredError               expired                504  the request's deadline passed before it ran
    ├── InferenceError             inference_failed       500  the model failed on the request's texts at run time
    ├── OutOfMemoryError           out_of_memory          503  a worker ran out of memory (transient)
    └── InternalError              internal_error         500  an unexpected exception: a bug, dead-lettered

Each class declares ``code`` (stable, for APIs, result rows and dead letters), ``http_status`` (what the HTTP
API answers) and ``transient`` (whether a retry can help). Messages say what was wrong and how to fix it.
``error_classes()`` walks the tree; tests/lepton_runtime/test_errors.py fails when a class lacks a code or
a status of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


class LeptonError(Exception):
    """Raised for every failure that Lepton Runtime reports on purpose."""

    code = "lepton_error"
    http_status = 500
    transient = False


class InvalidInputError(LeptonError):
    """Raised when input (texts, arguments, files) breaks a documented rule."""

    code = "invalid_input"
    http_status = 422

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
    http_status = 422


class TooLargeError(InvalidInputError):
    """Raised when a request is over a size limit (texts or bytes)."""

    code = "too_large"
    http_status = 413


class UnsupportedMediaError(InvalidInputError):
    """Raised when a body comes in a content type the route does not take."""

    code = "unsupported_media_type"
    http_status = 415


class UnauthorizedError(LeptonError):
    """Raised when a request has no valid bearer token."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(LeptonError):
    """Raised when a valid token lacks the scope a route needs (submit, read, train, admin), or its tenant may not
    act on a model it does not own."""

    code = "forbidden"
    http_status = 403


class RouteNotFoundError(LeptonError):
    """Raised when an HTTP request names a path the API does not serve."""

    code = "not_found"
    http_status = 404


class MethodNotAllowedError(LeptonError):
    """Raised when an HTTP route exists but not for the request's method."""

    code = "method_not_allowed"
    http_status = 405


class ModelNotFoundError(LeptonError):
    """Raised when a model reference names nothing that is published."""

    code = "unknown_model"
    http_status = 404


class WrongTaskError(LeptonError):
    """Raised when a model is asked for a task it was not exported for (embeddings of a classifier, say)."""

    code = "wrong_task"
    http_status = 422


class ModelIntegrityError(LeptonError):
    """Raised when a model file is missing or its sha256 differs from the manifest."""

    code = "corrupt_model"
    http_status = 500


class ProviderUnavailableError(LeptonError):
    """Raised when an execution provider was asked for but the session is not running on it."""

    code = "provider_unavailable"
    http_status = 503


class ExportError(LeptonError):
    """Raised when a checkpoint cannot be exported or published."""

    code = "export_failed"
    http_status = 500


class ParityError(ExportError):
    """Raised when the ONNX graph does not reproduce PyTorch within tolerance; nothing is published."""

    code = "parity_failed"
    http_status = 500


class QualityGateError(ExportError):
    """Raised when a quantised variant agrees too little with fp32 or loses too much accuracy."""

    code = "quality_gate_failed"
    http_status = 500

    def __init__(self, message: str, *, variant: str = "") -> None:
        super().__init__(message)
        self.variant = variant


class BrokerUnavailableError(LeptonError):
    """Raised when Redis (broker, result backend, job records) cannot be reached; a retry may help."""

    code = "broker_unavailable"
    http_status = 503
    transient = True


class BrokerFullError(BrokerUnavailableError):
    """Raised when Redis answers but refuses a write: it is at its ``maxmemory`` with the ``noeviction`` policy
    (never evicting queued work); a retry helps once memory frees."""

    code = "broker_full"
    http_status = 507


class ModelStoreUnavailableError(LeptonError):
    """Raised when the object store of the registry cannot be reached for a model this host has no copy of."""

    code = "store_unavailable"
    http_status = 503
    transient = True


class DataStoreUnavailableError(ModelStoreUnavailableError):
    """Raised when the data store of bulk datasets and outputs cannot be reached; the chunk runs again later."""

    code = "data_store_unavailable"
    http_status = 503


class QueueFullError(LeptonError):
    """Raised when a queue holds more waiting messages than the API accepts; try again later."""

    code = "queue_full"
    http_status = 429
    transient = True


class QuotaExceededError(QueueFullError):
    """Raised when a tenant already has its quota of requests waiting in the interactive lane; others are served."""

    code = "quota_exceeded"
    http_status = 429
    transient = True


class FleetConflictError(LeptonError):
    """Raised when `lepton up` would share a data folder or a port with something already running there."""

    code = "fleet_conflict"
    http_status = 409


class JobNotFoundError(LeptonError):
    """Raised when a job id names no job (never submitted, or its records expired)."""

    code = "unknown_job"
    http_status = 404


class ModelStateError(LeptonError):
    """Raised when a model's aliases or versions forbid what was asked now: rolling back an alias with no earlier
    version, deleting a version an alias points at."""

    code = "invalid_model_state"
    http_status = 409


class JobStateError(LeptonError):
    """Raised when a job cannot do what was asked in its current state (e.g. retry a cancelled job)."""

    code = "invalid_job_state"
    http_status = 409


class JobTimeoutError(LeptonError):
    """Raised when waiting for a job ends before the job does; the job itself goes on."""

    code = "job_timeout"
    http_status = 504


class JobFailedError(LeptonError):
    """Raised to a caller when its task failed with an unexpected error on the worker (a bug, dead-lettered)."""

    code = "job_failed"
    http_status = 500


class JobCancelledError(LeptonError):
    """Raised inside a running job when its cancel flag is seen; the job stops and publishes nothing."""

    code = "cancelled"
    http_status = 409


class ChunkNotRunError(LeptonError):
    """Reported in the result rows of a chunk that never ran before its job finished (it was cancelled)."""

    code = "not_run"
    http_status = 409


class PoisonMessageError(LeptonError):
    """Raised when a message was delivered too often without finishing: it is dead-lettered, not run."""

    code = "worker_lost"
    http_status = 500


class TaskTimeLimitError(LeptonError):
    """Recorded when a task ran past its soft or hard time limit (Celery's own exceptions map to it)."""

    code = "time_limit"
    http_status = 500


class ExpiredError(LeptonError):
    """Reported instead of a result when a request's deadline passed before a worker could run it (load shed)."""

    code = "expired"
    http_status = 504


class InferenceError(LeptonError):
    """Reported when the model failed at run time on a request's texts; the requests batched with it are
    answered normally (the batch is split until the failing request is alone)."""

    code = "inference_failed"
    http_status = 500


class OutOfMemoryError(LeptonError):
    """Recorded when a task ran out of memory (Python's MemoryError maps to it); a retry may help."""

    code = "out_of_memory"
    http_status = 503
    transient = True


class InternalError(LeptonError):
    """Recorded when a task raised an exception that is not ours: a bug, dead-lettered with its traceback."""

    code = "internal_error"
    http_status = 500


def error_classes() -> list[type[LeptonError]]:
    """Every class of the tree, the root first, in definition order (depth first)."""
    found: list[type[LeptonError]] = []
    pending: list[type[LeptonError]] = [LeptonError]
    while pending:
        kind = pending.pop(0)
        found.append(kind)
        pending[:0] = kind.__subclasses__()
    return found


def http_status_by_code() -> dict[str, int]:
    """The HTTP status of each stable code, derived from the classes."""
    return {kind.code: kind.http_status for kind in error_classes()}


__all__ = [
    "BrokerFullError",
    "BrokerUnavailableError",
    "ChunkNotRunError",
    "ExpiredError",
    "ExportError",
    "ForbiddenError",
    "InferenceError",
    "InputIssue",
    "InternalError",
    "InvalidInputError",
    "InvalidReferenceError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "JobTimeoutError",
    "LeptonError",
    "MethodNotAllowedError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "OutOfMemoryError",
    "ParityError",
    "PoisonMessageError",
    "ProviderUnavailableError",
    "QualityGateError",
    "QueueFullError",
    "QuotaExceededError",
    "RouteNotFoundError",
    "TaskTimeLimitError",
    "TooLargeError",
    "UnauthorizedError",
    "UnsupportedMediaError",
    "WrongTaskError",
    "error_classes",
    "http_status_by_code",
]
