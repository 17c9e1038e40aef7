"""Riding out a Redis outage: tried again with backoff up to the deadline; a wrong password is not an outage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lepton_runtime.jobs import connect
from lepton_runtime.jobs.waiting import through_outages
from tests.queue_fixtures import free_port
from workers.embedded import LocalRedis


def test_an_unreachable_redis_is_tried_again_until_the_deadline_then_reported() -> None:
    # nothing listens there; no retries inside redis-py, so each attempt here is one connection refused
    client = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    attempts: list[float] = []

    def ping() -> object:
        attempts.append(time.monotonic())
        return client.ping()

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        through_outages(ping, deadline=started + 2.0)
    assert len(attempts) >= 2, "tried again after the first refusal"
    assert started + 2.0 <= time.monotonic() < started + 5.0, "gave up at the deadline, not before nor long after"


def test_a_wrong_password_is_reported_at_once(tmp_path: Path) -> None:
    server = LocalRedis(free_port(), tmp_path / "redis", appendonly=False, password="the-password")
    url = server.start()
    try:
        client = connect(url.replace("the-password", "not-it"))
        attempts: list[int] = []

        def ping() -> object:
            attempts.append(1)
            return client.ping()

        with pytest.raises(redis.AuthenticationError):
            through_outages(ping, deadline=time.monotonic() + 30)
        assert attempts == [1]
    finally:
        server.stop()
