"""Every Redis key of Lepton Runtime's job layer, in one place: the prefix, the layout, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from lepton_runtime.constants import REDIS_KEY_PREFIX

# All job ids, scored by creation time (seconds since the epoch): `lepton jobs list`.
JOB_INDEX_KEY = f"{REDIS_KEY_PREFIX}jobs"


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
    def inputs(self) -> str:
        """Hash: chunk index -> JSON ``[[id, text], ...]``; deleted when the job succeeds."""
        return f"{self._base}:inputs"

    @property
    def chunk_positions(self) -> str:
        """Hash: chunk index -> JSON list of each of its texts' position in the input."""
        return f"{self._base}:positions"

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
    def results(self) -> str:
        """Hash: chunk index -> the chunk's output rows, JSON lines, written once."""
        return f"{self._base}:results"

    @property
    def finished_channel(self) -> str:
        """Pub/sub channel: the final state is published here once."""
        return f"{self._base}:finished"

    def all(self) -> list[str]:
        return [
            self.record, self.inputs, self.chunk_states, self.chunk_runs, self.chunk_errors, self.results,
            self.chunk_positions,
        ]  # fmt: skip


# All training run ids, scored by creation time: `lepton jobs list`.
TRAINING_INDEX_KEY = f"{REDIS_KEY_PREFIX}trains"


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
    """String: the id of the job first submitted with this idempotency key."""
    return f"{REDIS_KEY_PREFIX}idempotency:{key}"


def delivery_counter_key(task_id: str) -> str:
    """Integer: deliveries of this task id that started and have not finished."""
    return f"{REDIS_KEY_PREFIX}deliveries:{task_id}"


def dead_letter_key(queue: str) -> str:
    """Hash: dead-letter id -> JSON entry, one hash per queue."""
    return f"{REDIS_KEY_PREFIX}dlq:{queue}"


def worker_ready_key(worker_name: str) -> str:
    """List: one pid per worker process that has warmed its models and can take tasks."""
    return f"{REDIS_KEY_PREFIX}workers:{worker_name}:ready"
