"""Redis connections of the job layer: timeouts, reconnects with backoff, and Redis errors mapped to ours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from lepton_runtime.errors import BrokerFullError, BrokerUnavailableError
from lepton_runtime.settings import LeptonSettings

# Seconds to wait for a connection and for one command's answer.
SOCKET_CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 30.0
# Reconnect attempts of one command, with exponential backoff and jitter between them.
COMMAND_RETRIES = 5
SENTINEL_PORT = 26379


def connect(
    url: str,
    *,
    master_name: str | None = None,
    sentinel_kwargs: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    retries: int = COMMAND_RETRIES,
) -> redis.Redis:
    """A client for ``url`` (``redis://[:password@]host:port/db``) answering ``str``, retrying lost connections.

    A Sentinel URL (``sentinel://[:password@]host:port/db;sentinel://...``, what ``LeptonSettings.broker_url`` gives
    with LEPTON_REDIS_SENTINELS) needs ``master_name``: the client asks the Sentinels for that primary, and again
    whenever a connection fails or the server it reaches is no longer the primary (after a failover).
    ``timeout_s`` shortens the connect and command timeouts (defaults: SOCKET_*_TIMEOUT_S)."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout_s or SOCKET_CONNECT_TIMEOUT_S,
        "socket_timeout": timeout_s or SOCKET_TIMEOUT_S,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.1, cap=5.0), retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    if not url.startswith("sentinel://"):
        return redis.Redis.from_url(url, **options)
    if not master_name:
        raise ValueError("a Sentinel URL needs the service name (LEPTON_REDIS_SERVICE)")
    addresses = [urlsplit(part) for part in url.split(";")]
    first = addresses[0]
    sentinels = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        [(address.hostname or "127.0.0.1", address.port or SENTINEL_PORT) for address in addresses],
        sentinel_kwargs={  # a Sentinel answers at once or not at all: the short timeout for both
            "socket_connect_timeout": timeout_s or SOCKET_CONNECT_TIMEOUT_S,
            "socket_timeout": timeout_s or SOCKET_CONNECT_TIMEOUT_S,
            **(sentinel_kwargs or {}),
        },
        password=unquote(first.password) if first.password else None,
        db=int(first.path.strip("/") or 0),
        **options,
    )
    primary: redis.Redis = sentinels.master_for(master_name, redis_class=redis.Redis)  # type: ignore[no-untyped-call, unused-ignore]
    return primary


def connect_with(
    settings: LeptonSettings, *, timeout_s: float | None = None, retries: int = COMMAND_RETRIES
) -> redis.Redis:
    """The client ``settings`` name: LEPTON_REDIS_URL's server, or the primary the Sentinels name."""
    return connect(settings.broker_url, timeout_s=timeout_s, retries=retries, **settings.sentinel_options())


def write_then_wait(
    client: redis.Redis, write: Callable[[Any], object], *, wait_replicas: int = 0, wait_timeout_ms: int = 1000
) -> int | None:
    """Queue ``write``'s commands on one pipeline and send them; with ``wait_replicas``, then WAIT (up to
    ``wait_timeout_ms``) for that many replicas to hold them and every write before them. How many replicas do, or
    None when not asked (LEPTON_REDIS_WAIT_REPLICAS=0)."""
    with client.pipeline(transaction=False) as pipe:  # one connection: WAIT follows this client's writes
        write(pipe)
        if wait_replicas:
            pipe.wait(wait_replicas, wait_timeout_ms)
        results = pipe.execute()
    return int(results[-1]) if wait_replicas else None


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs (each Sentinel of a Sentinel URL)."""
    if ";" in url:
        return ";".join(redacted(part) for part in url.split(";"))
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
    except redis.exceptions.OutOfMemoryError:
        raise BrokerFullError(
            f"Redis at {redacted(url)} is full (its maxmemory, with the noeviction policy that never drops queued "
            "work) and refused the write; nothing of this submission was kept. Retry once memory frees (finished "
            "jobs expire after LEPTON_JOB_TTL_S; `lepton jobs list` shows them), or raise Redis's maxmemory"
        ) from None
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise BrokerUnavailableError(
            f"Redis at {redacted(url)} does not answer ({error}); start one with `lepton up`, "
            "or point LEPTON_REDIS_URL at a running Redis"
        ) from None
