"""How the task guard classifies a failure: its code and class in the error tree, whether a retry can help,
and whether Redis is out of reach (then the message is given back rather than recorded)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from lepton_runtime.errors import (
    BrokerUnavailableError,
    InternalError,
    InvalidInputError,
    ModelIntegrityError,
    OutOfMemoryError,
    QueueFullError,
    TaskTimeLimitError,
)
from workers.guard import error_class, error_code, is_transient, redis_unreachable


@pytest.mark.parametrize(
    ("error", "kind", "transient"),
    [
        (InvalidInputError("texts.0: empty"), InvalidInputError, False),
        (ModelIntegrityError("sha256 differs"), ModelIntegrityError, False),
        (QueueFullError("deep"), QueueFullError, True),
        (SoftTimeLimitExceeded(), TaskTimeLimitError, False),
        (TimeLimitExceeded(300), TaskTimeLimitError, False),
        (redis.ConnectionError("refused"), BrokerUnavailableError, False),  # given back, never retried
        (MemoryError(), OutOfMemoryError, True),
        (KeyError("model"), InternalError, False),
    ],
)
def test_each_failure_maps_to_one_class_of_the_tree(error: BaseException, kind: type, transient: bool) -> None:
    assert error_class(error) is kind
    assert error_code(error) == kind.code  # type: ignore[attr-defined]
    assert is_transient(error) is transient


def test_redis_errors_mean_out_of_reach_but_a_wrong_password_does_not() -> None:
    assert redis_unreachable(redis.ConnectionError("Connection refused"))
    assert redis_unreachable(redis.TimeoutError("Timeout reading from socket"))
    assert not redis_unreachable(redis.AuthenticationError("invalid password"))
    assert not redis_unreachable(ValueError("bad"))


@contextmanager
def _soft_time_limit_in(seconds: float) -> Iterator[None]:
    """What Celery's soft time limit does: SIGALRM raises SoftTimeLimitExceeded wherever the task is."""

    def strike(*_: object) -> None:
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, strike)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_time_limit_that_strikes_inside_redis_py_means_redis_is_out_of_reach(redis_client: redis.Redis) -> None:
    with pytest.raises(SoftTimeLimitExceeded) as waiting_on_redis, _soft_time_limit_in(0.2):
        redis_client.blpop(["lepton:test:never-filled"], timeout=5)  # blocked in redis-py's socket read
    assert redis_unreachable(waiting_on_redis.value)

    with pytest.raises(SoftTimeLimitExceeded) as computing, _soft_time_limit_in(0.2):
        while True:
            sum(range(10_000))  # the task's own work: the limit is the task's fault, not Redis's
    assert not redis_unreachable(computing.value)
