"""Job records in Redis shared by producers and workers: bulk jobs, chunks, dead letters, delivery counts."""

from lepton_runtime.jobs.connection import broker_errors, connect, redacted
from lepton_runtime.jobs.dead_letters import DeadLetter, DeadLetterStore, new_dead_letter
from lepton_runtime.jobs.deliveries import DeliveryCounter
from lepton_runtime.jobs.protocol import celery_config
from lepton_runtime.jobs.schemas import FINAL_STATES, ChunkFailure, JobState, JobStatus, Progress
from lepton_runtime.jobs.store import JobStore

__all__ = [
    # the stores
    "DeadLetterStore",
    "DeliveryCounter",
    "JobStore",
    # what they hold
    "ChunkFailure",
    "DeadLetter",
    "FINAL_STATES",
    "JobState",
    "JobStatus",
    "Progress",
    "new_dead_letter",
    # connections and configuration
    "broker_errors",
    "celery_config",
    "connect",
    "redacted",
]
