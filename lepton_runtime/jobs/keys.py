"""Every Redis key of Lepton Runtime, in one place: the prefix, the layout, nothing else.

Ours (jobs, training runs, dead letters, deliveries, readiness, locks) and the ones kombu's Redis transport
makes for the queues, which the queue-depth metric, the lost-chunk sweep and the tests read.
"""

from __future__ import annotations

from dataclasses import dataclass

from lepton_runtime.constants import DEFAULT_TENANT, PRIORITY_STEPS, REDIS_KEY_PREFIX

# All job ids, scored by creation time (seconds since the epoch): `lepton jobs list`.
JOB_INDEX_KEY = f"{REDIS_KEY_PREFIX}jobs"


def tenant_job_index_key(tenant: str) -> str:
    """Sorted set: one tenant's bulk job ids, scored by creation time (its `GET /v1/jobs`)."""
    return f"{JOB_INDEX_KEY}:tenant:{tenant}"


@dataclass(frozen=True)
class JobKeys:
    """The keys of one bulk job; all of them expire together."""

    job_id: str

    @property
    def _base(self) -> str:
        return f"{REDIS_KEY_PREFIX}job:{self.job_id}"

    @property
    def record(self) -> str:
        """Hash: the job's fields and counters."""
        return self._base

    @property
    def splits(self) -> str:
        """Hash: chunk index -> where its rows are in the dataset, ``file,start,stop,row_group,first_row``."""
        return f"{self._base}:splits"

    @property
    def files(self) -> str:
        """String: JSON ``[[path, format, compression, bytes], ...]``, the dataset's files as planned at submit."""
        return f"{self._base}:files"

    @property
    def chunk_states(self) -> str:
        """Hash: chunk index -> queued | running | done | failed | cancelled."""
        return f"{self._base}:chunks"

    @property
    def chunk_runs(self) -> str:
        """Hash: chunk index -> how many times a worker started it."""
        return f"{self._base}:runs"

    @property
    def chunk_errors(self) -> str:
        """Hash: chunk index -> JSON ``{"code", "message"}`` of its last failure."""
        return f"{self._base}:errors"

    @property
    def parts(self) -> str:
        """Hash: chunk index -> its output part in the data store, ``rows,bytes,sha256``, written once."""
        return f"{self._base}:parts"

    @property
    def finished_channel(self) -> str:
        """Pub/sub channel: the final state is published here once."""
        return f"{self._base}:finished"

    def all(self) -> list[str]:
        return [self.record, self.chunk_states, self.chunk_runs, self.chunk_errors, self.parts, self.splits, self.files]


# All training run ids, scored by creation time: `lepton jobs list`.
TRAINING_INDEX_KEY = f"{REDIS_KEY_PREFIX}trains"


def tenant_training_index_key(tenant: str) -> str:
    """Sorted set: one tenant's training run ids, scored by creation time."""
    return f"{TRAINING_INDEX_KEY}:tenant:{tenant}"


@dataclass(frozen=True)
class TrainingKeys:
    """The keys of one training run (its id is its ``lepton.train`` task id)."""

    run_id: str

    @property
    def record(self) -> str:
        """Hash: request, state, progress, cancel flag, outcome or error, timestamps, attempts."""
        return f"{REDIS_KEY_PREFIX}train:{self.run_id}"

    @property
    def data(self) -> str:
        """String: the training rows, JSON lines ``{"text", "label"}``; deleted when the run succeeds."""
        return f"{self.record}:data"

    @property
    def validation(self) -> str:
        """String: the validation rows, when the producer gave a validation file."""
        return f"{self.record}:validation"

    @property
    def finished_channel(self) -> str:
        """Pub/sub channel: the final state is published here once."""
        return f"{self.record}:finished"


def idempotency_key(key: str) -> str:
    """String: the id of the job first submitted with this idempotency key (``tenant_scoped`` first)."""
    return f"{REDIS_KEY_PREFIX}idempotency:{key}"


# What a tenant's own idempotency keys start with.
_SCOPED = "tenant:"


def tenant_scoped(tenant: str, key: str | None) -> str | None:
    """An idempotency key as one tenant's own: two tenants using the same key get two jobs. The default tenant's
    keys are kept as they were before tenants owned their work, so a submission retried across the upgrade still
    finds its job; one of its keys that looks scoped is scoped again, so that it can never name another's. No key:
    None."""
    if key is None or (tenant == DEFAULT_TENANT and not key.startswith(_SCOPED)):
        return key
    return f"{_SCOPED}{tenant}:{key}"


# Between the job id and the chunk number in a chunk task's id (jobs/sending.py).
CHUNK_TASK_MARK = ".chunk"


def request_owner_key(request_id: str) -> str:
    """String: the tenant that sent a one-text request (either lane); it expires with the request's answer."""
    return f"{REDIS_KEY_PREFIX}owner:{request_id}"


def task_result_key(task_id: str) -> str:
    """String: Celery's result of a task (the result backend's key, under the global key prefix)."""
    return f"{REDIS_KEY_PREFIX}celery-task-meta-{task_id}"


# Hash: "<tenant>|<counter>" -> count, bulk work per tenant (jobs_submitted, jobs_succeeded, jobs_failed,
# jobs_cancelled, texts, invalid_texts, failed_chunks), kept by the job scripts and read by the metrics.
BULK_TENANT_COUNTERS_KEY = f"{REDIS_KEY_PREFIX}bulk:tenant-counters"

# Hash: tenant -> its bulk jobs queued or running, which share the tenant's weight of worker time (jobs/scripts.py).
BULK_RUNNING_JOBS_KEY = f"{REDIS_KEY_PREFIX}bulk:running-jobs"

# Stream: the audit trail of administrative actions (jobs/audit.py), trimmed to a bounded length.
AUDIT_KEY = f"{REDIS_KEY_PREFIX}audit"


def delivery_counter_key(task_id: str) -> str:
    """Integer: deliveries of this task id that started and have not finished."""
    return f"{REDIS_KEY_PREFIX}deliveries:{task_id}"


def dead_letter_key(queue: str) -> str:
    """Hash: dead-letter id -> JSON entry, one hash per queue."""
    return f"{REDIS_KEY_PREFIX}dlq:{queue}"


# what each worker process holds (lepton_runtime/jobs/fleet_status.py): a hash, one field per process
FLEET_KEY = f"{REDIS_KEY_PREFIX}fleet:processes"


def worker_ready_key(worker_name: str) -> str:
    """List: one pid per worker process that has warmed its models and can take tasks."""
    return f"{REDIS_KEY_PREFIX}workers:{worker_name}:ready"


# String (SET NX with an expiry of one interval): the worker sweeping for lost messages (chunks, training runs) now.
LOST_CHUNK_SWEEP_LOCK_KEY = f"{REDIS_KEY_PREFIX}lost-chunk-sweep"


# -- the interactive lane (jobs/lanes.py) --------------------------------------------------------------
# Set: every tenant that has sent an interactive request (each has a stream below).
INTERACTIVE_TENANTS_KEY = f"{REDIS_KEY_PREFIX}lane:tenants"
# Hash: tenant -> interactive requests refused over its quota (a counter for the metrics).
INTERACTIVE_REJECTED_KEY = f"{REDIS_KEY_PREFIX}lane:rejected"
# Hash: tenant -> interactive requests admitted (a counter: the workers tell from it which tenants are sending).
INTERACTIVE_ADMITTED_KEY = f"{REDIS_KEY_PREFIX}lane:admitted"
# The consumer group of the worker processes on every tenant's stream.
INTERACTIVE_GROUP = "lepton-workers"


def interactive_stream_key(tenant: str) -> str:
    """Stream: a tenant's interactive requests, one entry each (``request``: JSON), deleted once answered."""
    return f"{REDIS_KEY_PREFIX}lane:interactive:{tenant}"


def answer_list_key(request_id: str) -> str:
    """List: the answer of an interactive request (Celery result meta, JSON), pushed once for the client that
    waits on it (BLPOP); the answer itself stays in the result backend, under the request's id."""
    return f"{REDIS_KEY_PREFIX}answer:{request_id}"


# -- kombu's keys: the transport names them and puts the global key prefix (REDIS_KEY_PREFIX) first ----
# kombu's Redis transport keeps one list per priority step: "<queue>", "<queue>\x06\x163", ...
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
# Hash: delivered, not yet acknowledged messages of the inference workers.
UNACKED_KEY = f"{REDIS_KEY_PREFIX}unacked"
# Workers that consume the training queue keep their unacknowledged messages under keys of their own
# (transport options, named without the prefix), with a visibility timeout above the longest run: an
# inference worker's restore sweep (every few seconds, with a timeout of minutes) never gives a training
# run that is still going to a second worker.
TRAINING_UNACKED_KEYS = {
    "unacked_key": "unacked.training",
    "unacked_index_key": "unacked_index.training",
    "unacked_mutex_key": "unacked_mutex.training",
}


def queue_lists(queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s waiting messages, highest priority first."""
    base = f"{REDIS_KEY_PREFIX}{queue}"
    return [base if step == 0 else f"{base}{KOMBU_PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
