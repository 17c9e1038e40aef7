"""Job records in Redis shared by producers and workers: bulk jobs, training runs, dead letters, delivery counts."""

from lepton_runtime.jobs.connection import broker_errors, connect, connect_with, redacted
from lepton_runtime.jobs.dead_letters import DeadLetter, DeadLetterStore, new_dead_letter
from lepton_runtime.jobs.deliveries import DeliveryCounter
from lepton_runtime.jobs.protocol import celery_config
from lepton_runtime.jobs.schemas import (
    DEFAULT_TRAINING,
    FINAL_STATES,
    RESULT_STATES,
    ChunkFailure,
    JobError,
    JobState,
    JobStatus,
    Progress,
    PromotePolicy,
    TrainedTask,
    TrainingOptions,
    TrainingOutcome,
    TrainingProgress,
    TrainingStatus,
    TrainRequest,
)
from lepton_runtime.jobs.store import JobStore
from lepton_runtime.jobs.training_runs import TrainingRuns

__all__ = [
    # the stores
    "DeadLetterStore",
    "DeliveryCounter",
    "JobStore",
    "TrainingRuns",
    # what they hold
    "ChunkFailure",
    "DEFAULT_TRAINING",
    "DeadLetter",
    "FINAL_STATES",
    "JobError",
    "JobState",
    "JobStatus",
    "Progress",
    "PromotePolicy",
    "TrainedTask",
    "RESULT_STATES",
    "TrainRequest",
    "TrainingOptions",
    "TrainingOutcome",
    "TrainingProgress",
    "TrainingStatus",
    "new_dead_letter",
    # connections and configuration
    "broker_errors",
    "celery_config",
    "connect",
    "connect_with",
    "redacted",
]
