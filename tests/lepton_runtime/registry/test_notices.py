"""Alias moves told through Redis: a mover that cannot reach a configured fleet warns; on the embedded default with no
Redis running there is no fleet, so nothing to warn about."""

from __future__ import annotations

import logging

import pytest
import redis

from lepton_runtime.registry.notices import RegistryNotices
from tests.queue_fixtures import free_port


def refused() -> redis.Redis:
    """A client of a port nobody listens on (the move's Redis is down)."""
    return redis.Redis(port=free_port(), socket_connect_timeout=1)


def test_a_configured_fleet_that_cannot_be_told_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="lepton_runtime.registry.notices"):
        RegistryNotices(refused(), fleet_expected=True).announce("intents")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "could not tell the fleet" in record.message and "within 5 s anyway" in record.message


def test_no_embedded_redis_means_no_fleet_and_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="lepton_runtime.registry.notices"):
        RegistryNotices(refused(), fleet_expected=False).announce("intents")
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]
