"""The mended Redis transport: a channel whose connection is gone reports a connection error, which Celery's
reconnect path catches, instead of an AttributeError that ends the worker."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection

from lepton_runtime.jobs.protocol import BROKER_TRANSPORT_CLASS


def test_a_channel_of_a_closed_connection_raises_a_connection_error(redis_url: str) -> None:
    connection = Connection(redis_url, transport=BROKER_TRANSPORT_CLASS)
    channel = connection.channel()
    assert channel.client.ping()
    connection.transport.client = None  # what closing the connection leaves behind (kombu#970)
    with pytest.raises(redis.ConnectionError):
        channel._connparams()
    assert isinstance(redis.ConnectionError(), tuple(connection.connection_errors))
