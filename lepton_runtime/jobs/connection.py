"""Redis connections of the job layer: timeouts, reconnects with backoff, and Redis errors mapped to ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from lepton_runtime.errors import BrokerUnavailableError

# Seconds to wait for a connection and for one command's answer.
SOCKET_CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 30.0
# Reconnect attempts of one command, with exponential backoff and jitter between them.
COMMAND_RETRIES = 5


def connect(url: str) -> redis.Redis:
    """A client for ``url`` (``redis://[:password@]host:port/db``) answering ``str``, retrying lost connections."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=SOCKET_CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=5.0), COMMAND_RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@contextmanager
def broker_errors(url: str) -> Iterator[None]:
    """Turn Redis connection failures into BrokerUnavailableError that says where and how to fix."""
    try:
        yield
    except redis.AuthenticationError:
        raise BrokerUnavailableError(
            f"Redis at {redacted(url)} refused the password; check the one in LEPTON_REDIS_URL"
        ) from None
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise BrokerUnavailableError(
            f"Redis at {redacted(url)} does not answer ({error}); start one with `lepton up`, "
            "or point LEPTON_REDIS_URL at a running Redis"
        ) from None
