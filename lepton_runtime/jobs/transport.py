"""kombu's Redis transport with two mends, so that Redis going away and coming back never stops a worker.

1. No redis-py retries inside kombu's clients. redis-py retries a failed read by reconnecting and reading
   again; on the pub/sub connection of remote control that read blocks the worker's event loop until a
   message comes (seen here: a worker that never consumed again after its third Redis restart). Without
   them the error reaches kombu and Celery, which reconnect the consumer as a whole.
2. A channel whose connection is already gone reports a connection error.

For 2: when Redis drops the worker's connection, Celery closes it and kombu's channel tries, while closing, to give back
its unacknowledged messages through a new client built from ``connection.client``, which the close has already
set to None. The AttributeError that follows is not a connection error, so Celery's reconnect path does not
catch it and the worker exits ("Unrecoverable error", celery/kombu#970, #582; seen here when Redis went down
again right after a reconnect). Raising redis's ConnectionError instead lets Celery reconnect; the messages stay
in Redis's unacknowledged hash and come back after the visibility timeout.

Named in the Celery configuration (``broker_transport``), so every broker URL stays ``redis://``.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed already")
        params = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        params["retry"] = Retry(NoBackoff(), 0)  # errors go to kombu and Celery, which reconnect
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
