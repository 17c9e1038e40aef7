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

And one addition: **leases on held messages**, so that a lost worker's messages come back in seconds.

3. kombu records every message a worker takes in an index scored by the time it took it, and gives back to its
   queue any message older than the visibility timeout: the only sign of a dead worker. With one long timeout
   a killed worker's chunk waits minutes (360 s by default before); with a short one a long task on a live
   worker would be started twice. Here each process renews the score of every message it holds (a
   ``MessageLeases`` thread, every quarter of the timeout), so the timeout is a lease: a message comes back
   within one timeout (plus one restore interval) of its holder's last renewal, and never while the holder lives.
4. A message given back gets a new delivery tag. A holder that was only paused past its lease (SIGSTOP, a
   long swap storm) and comes back acknowledges its old tag: the new holder's record stays, so the message is
   still given back if the new holder dies too. The paused holder may finish its task: a chunk's rows are
   stored once; a ``lepton.classify`` result is stored twice with the same answer.

Named in the Celery configuration (``broker_transport``), so every broker URL stays ``redis://``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# A holder renews its messages this many times per visibility timeout.
RENEWALS_PER_TIMEOUT = 4


class MessageLeases:
    """The lease renewals of one process: a daemon thread, started when the process first takes a message (only
    consumers do), that sets the index score of every message its channels hold to now (``ZADD XX``: a message
    acknowledged or given back meanwhile is not recorded again)."""

    def __init__(self) -> None:
        self._holders: weakref.WeakSet[QoS] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def hold(self, qos: QoS) -> None:
        with self._lock:
            self._holders.add(qos)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lepton-message-leases", daemon=True)
                self._thread.start()

    def renew(self) -> int:
        """Renew every held message now; returns how many were renewed."""
        with self._lock:
            holders = list(self._holders)
        return sum(self._renew(qos) for qos in holders)

    def _loop(self) -> None:
        while True:
            with self._lock:
                timeouts = [qos.visibility_timeout for qos in self._holders]
            self._wake.wait(min(timeouts, default=1.0) / RENEWALS_PER_TIMEOUT)
            try:
                self.renew()
            except Exception:  # a bug: logged, and the next turn tries again (a dead thread would renew nothing)
                logger.exception("message leases: renewal failed")

    @staticmethod
    def _renew(qos: QoS) -> int:
        tags = qos.held_tags()
        if not tags:
            return 0
        try:
            # a client of the channel's blocking pool: the event loop's own connections (BRPOP) are never touched
            with qos.channel.conn_or_acquire() as client:
                renewed = client.zadd(qos.unacked_index_key, dict.fromkeys(tags, time.time()), xx=True, ch=True)
            return int(renewed)
        except (redis.RedisError, AttributeError) as error:  # Redis away, or the channel closed meanwhile
            logger.warning("could not renew the leases of %d messages: %s (renewed at the next turn)", len(tags), error)
            return 0

    def _forget_after_fork(self) -> None:
        # a forked child (a pool process) holds no message of its parent and has no renewing thread
        self._holders = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread = None


LEASES = MessageLeases()
os.register_at_fork(after_in_child=LEASES._forget_after_fork)


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]
        LEASES.hold(self)

    def held_tags(self) -> list[str]:
        """The tags of the messages this channel holds (taken, not acknowledged); read from the renewing thread.
        A closed channel holds none: Celery gives up its tasks after a lost connection (and the tags its close
        could not give back, Redis being away, must expire like a dead worker's, not be renewed forever)."""
        if self.channel.closed:
            return []
        while True:
            try:
                return list(self._delivered)
            except RuntimeError:  # the consumer changed it meanwhile
                continue


class Channel(kombu_redis.Channel):
    QoS = QoS

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any) -> None:
        """As kombu's, but a message that neither kombu nor Celery can read (a body that is not base64, a payload
        without properties: what a buggy or hostile producer may push into the list) is logged and dropped. Before,
        Celery's consumer died of it ("Unrecoverable error") and the worker stopped consuming."""
        super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)  # type: ignore[no-untyped-call]
        deliver = self.connection._callbacks[queue]

        def guarded(raw_message: Any) -> Any:
            try:
                return deliver(raw_message)
            except self.connection_errors:
                raise
            except Exception as error:
                self._drop_unreadable(raw_message, error, queue)
                return None

        self.connection._callbacks[queue] = guarded

    def _drop_unreadable(self, raw_message: Any, error: Exception, queue: str) -> None:
        headers = raw_message.get("headers") if isinstance(raw_message, dict) else None
        logger.error(
            "dropped an unreadable message from %s (%s: %s); headers: %.300r",
            queue,
            type(error).__name__,
            error,
            headers,
        )
        properties = raw_message.get("properties") if isinstance(raw_message, dict) else None
        tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
        if tag is not None and tag in self.qos._delivered:
            with contextlib.suppress(Exception):  # taken already: off the unacknowledged hash, or it comes back
                self.qos.reject(tag, requeue=False)

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        with contextlib.suppress(KeyError, TypeError):  # a message without properties keeps what it has
            payload["properties"]["delivery_tag"] = self._next_delivery_tag()  # type: ignore[no-untyped-call]
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)  # type: ignore[no-untyped-call]

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed already")
        params = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        params["retry"] = Retry(NoBackoff(), 0)  # errors go to kombu and Celery, which reconnect
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The same mends and leases on a connection to the primary that Redis Sentinels name."""


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
