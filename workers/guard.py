"""The base of every Lepton task: bounded redeliveries, retries with backoff, and dead letters with the cause.

a message is delivered -> counted; more starts than ``max_deliveries`` -> dead letter, not run
the task raises a transient error -> retried with exponential backoff and full jitter
it raises a permanent error       -> fails at once with the error's stable code
it raises anything else           -> a bug: no retry, dead letter with the traceback
the work is already settled       -> (another delivery finished it) a late failure records nothing
the data store does not answer    -> an outage: after a pause the message is given back, as many times as it takes
                                     (a bulk chunk reads and writes its rows there; no retry budget runs out while
                                     the store is down, so a job outlives an outage without a manual step)
Redis does not answer (refused, timed out, or the time limit struck while waiting on it), in the task or around it
                                  -> an outage, not the input's fault: the message is given back (redelivered
                                     once Redis answers, here or on another worker) and nothing is recorded,
                                     since every record lives in the Redis that cannot be reached; a retry
                                     would have to be published through that same Redis

The soft time limit is armed for the task body only. Billiard signals it whenever the limit passes before the
pool hears that the task ended, which includes the moments after the body returned while Celery stores and logs
the result; struck there, Celery would overwrite the stored success with a failure and dead-letter done work.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from traceback import format_exc, walk_tb
from typing import Any

import redis
from billiard.einfo import ExceptionInfo
from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler
from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded, TimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from lepton_runtime.constants import INFERENCE_QUEUE, RETRY_BACKOFF_BASE_S, RETRY_BACKOFF_MAX_S
from lepton_runtime.errors import (
    BrokerUnavailableError,
    DataStoreUnavailableError,
    InternalError,
    InvalidInputError,
    LeptonError,
    OutOfMemoryError,
    PoisonMessageError,
    TaskTimeLimitError,
)
from lepton_runtime.jobs import new_dead_letter
from workers.runtime import WorkerRuntime, current

logger = logging.getLogger(__name__)

# A task that found the data store out of reach waits this long before its message goes back to the queue (s).
DATA_STORE_PAUSE_S = 2.0
# Failures whose dead letter keeps the traceback: where the cause is in the code, not the input.
TRACEBACK_KEPT = (InternalError, TaskTimeLimitError)


def error_class(error: BaseException) -> type[LeptonError]:
    """The class of the error tree a failure is recorded as (third-party exceptions mapped to the most specific)."""
    if isinstance(error, LeptonError):
        return type(error)
    if isinstance(error, SoftTimeLimitExceeded | TimeLimitExceeded):
        return TaskTimeLimitError
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return BrokerUnavailableError
    if isinstance(error, MemoryError):
        return OutOfMemoryError
    return InternalError


def failure_message(error: BaseException) -> str:
    """What a failure says in job records and dead letters: an error of the tree its own message; a time limit
    what to change (Celery's exceptions say only their name); anything else its type and text."""
    if isinstance(error, SoftTimeLimitExceeded | TimeLimitExceeded):
        return (
            "the task ran past its time limit (LEPTON_TASK_SOFT_TIME_LIMIT_S, LEPTON_TASK_TIME_LIMIT_S): give it"
            " more time, or send smaller chunks (chunk_size)"
        )
    text = str(error).strip()
    if isinstance(error, LeptonError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def error_code(error: BaseException) -> str:
    """The stable code of a failure, for results, job records and dead letters."""
    return error_class(error).code


def is_transient(error: BaseException) -> bool:
    """Whether a retry later can help: out of memory, or a LeptonError saying so (Redis out of reach is
    handled before, by giving the message back: see ``redis_unreachable``)."""
    if isinstance(error, LeptonError):
        return error.transient
    return isinstance(error, MemoryError)


def redis_unreachable(error: BaseException) -> bool:
    """Whether ``error`` means Redis is out of reach: a connection error, or a time limit that struck while the
    task waited inside redis-py for an answer (the network to Redis is down), judged by the interrupted frames."""
    if isinstance(error, redis.AuthenticationError):
        return False  # a wrong password: waiting does not help
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return True
    if not isinstance(error, SoftTimeLimitExceeded):
        return False
    frames = [frame for frame, _ in walk_tb(error.__traceback__)]
    interrupted = frames[-3:]  # the signal handler raises in the innermost frame; redis-py sits just above
    return any(str(frame.f_globals.get("__name__", "")).startswith("redis.") for frame in interrupted)


@contextlib.contextmanager
def soft_time_limit_armed() -> Iterator[None]:
    """Arm billiard's soft time limit signal while the block runs and ignore it after, until the next task arms it
    again (in a prefork pool process; elsewhere soft time limits are not signalled and this does nothing)."""
    in_pool_process = SIG_SOFT_TIMEOUT is not None and threading.current_thread() is threading.main_thread()
    if in_pool_process and signal.getsignal(SIG_SOFT_TIMEOUT) is signal.SIG_IGN:
        signal.signal(SIG_SOFT_TIMEOUT, soft_timeout_sighandler)
    try:
        yield
    finally:
        if in_pool_process and signal.getsignal(SIG_SOFT_TIMEOUT) is soft_timeout_sighandler:
            signal.signal(SIG_SOFT_TIMEOUT, signal.SIG_IGN)


class LeptonTask(Task):  # type: ignore[misc]
    """Counts deliveries, retries transient errors, dead-letters what cannot succeed by itself."""

    #: the "succeeded" log line shows this much of the answer (Celery walks it all up to 1 KiB otherwise)
    resultrepr_maxsize = 120

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with soft_time_limit_armed():
            try:
                return self._guarded_call(*args, **kwargs)
            except Exception as error:
                # Redis out of reach in the body or around it (counting the delivery, recording the end: a Sentinel
                # failover under way): the message goes back. Raised on, Celery would record the task as failed
                # once Redis answered again, and a bulk chunk that only met the outage would fail its job
                if redis_unreachable(error):
                    logger.warning(
                        "%s %s: Redis does not answer (%s); the message goes back to the queue and runs again once "
                        "Redis answers, here or on another worker",
                        self.name, self.request.id, type(error).__name__,
                    )  # fmt: skip
                    raise Reject(f"Redis unreachable while running {self.request.id}", requeue=True) from error
                raise

    def _guarded_call(self, *args: Any, **kwargs: Any) -> Any:
        runtime = current()
        task_id = self.request.id
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        starts = runtime.deliveries.started(task_id, redelivered=redelivered)
        limit = runtime.settings.max_deliveries
        if starts > limit:
            runtime.deliveries.finished(task_id, redelivered=redelivered)
            error = PoisonMessageError(
                f"{self.name} {task_id} started {starts - 1} times and its worker died each time "
                f"(limit LEPTON_MAX_DELIVERIES={limit}); it was dead-lettered without running. "
                f"Find the cause in the worker logs, then `lepton dlq replay {task_id}`"
            )
            self._record_failure(runtime, task_id, error, args, kwargs, attempts=starts - 1, traceback=None)
            raise error
        try:
            result = self.run(*args, **kwargs)
        except Exception as error:
            if redis_unreachable(error):
                raise  # given back by __call__; nothing is recorded in the Redis out of reach
            runtime.deliveries.finished(task_id, redelivered=redelivered)
            if isinstance(error, DataStoreUnavailableError):
                logger.warning(
                    "%s %s: %s; the message goes back to the queue in %.0f s and runs again once the store answers",
                    self.name, task_id, error, DATA_STORE_PAUSE_S,
                )  # fmt: skip
                time.sleep(DATA_STORE_PAUSE_S)  # a refused connection fails at once: not a hot loop meanwhile
                raise Reject(f"data store unreachable while running {task_id}", requeue=True) from error
            retries = self.request.retries
            if is_transient(error) and retries < runtime.settings.max_retries:
                countdown_s = get_exponential_backoff_interval(
                    RETRY_BACKOFF_BASE_S, retries, RETRY_BACKOFF_MAX_S, full_jitter=True
                )
                logger.warning("%s %s: %s; retry in %.1f s", self.name, task_id, error, countdown_s)
                raise self.retry(exc=error, countdown=countdown_s, max_retries=runtime.settings.max_retries) from error
            self._record_failure(runtime, task_id, error, args, kwargs, attempts=retries + 1, traceback=format_exc())
            raise
        runtime.deliveries.finished(task_id, redelivered=redelivered)
        return result

    def on_failure(
        self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: ExceptionInfo
    ) -> None:
        """Failures that never passed through ``__call__`` (a hard time limit kills the process and Celery
        reports it from the worker's main process) are recorded here."""
        if not getattr(exc, "_lepton_recorded", False):
            self._record_failure(current(), task_id, exc, args, kwargs, attempts=1, traceback=einfo.traceback)

    def _record_failure(
        self,
        runtime: WorkerRuntime,
        task_id: str,
        error: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        attempts: int,
        traceback: str | None,
    ) -> None:
        """Dead letter first (unless the input was at fault: replaying it cannot help), then the task's own
        records (``gave_up``), both before Celery stores the failure: whoever sees the failure finds them."""
        if self.settled(runtime, args):
            logger.warning(
                "%s %s failed (%s: %s) after another delivery had finished its work; nothing is recorded",
                self.name,
                task_id,
                type(error).__name__,
                error,
            )
            return
        kind = error_class(error)
        code = kind.code
        if not isinstance(error, InvalidInputError):
            runtime.dead_letters.add(
                new_dead_letter(
                    id=task_id,
                    queue=(self.request.delivery_info or {}).get("routing_key") or INFERENCE_QUEUE,
                    task=self.name,
                    args=list(args),
                    kwargs=dict(kwargs),
                    payload_ref=self.payload_ref(args),
                    code=code,
                    message=failure_message(error),
                    traceback=traceback if issubclass(kind, TRACEBACK_KEPT) else None,
                    attempts=attempts,
                )
            )
            logger.error("%s %s dead-lettered [%s]: %s", self.name, task_id, code, error)
        self.gave_up(runtime, args, code, failure_message(error))
        with contextlib.suppress(AttributeError):  # some exceptions refuse new attributes
            error._lepton_recorded = True  # type: ignore[attr-defined]

    def gave_up(self, runtime: WorkerRuntime, args: tuple[Any, ...], code: str, message: str) -> None:
        """Hook: tell the task's own records that it failed for good."""

    def settled(self, runtime: WorkerRuntime, args: tuple[Any, ...]) -> bool:
        """Hook: whether the work of this message is already finished for good, so a failure now is stale."""
        return False

    def payload_ref(self, args: tuple[Any, ...]) -> str | None:
        """Hook: where the task's input lives when it is not in its arguments."""
        return None
