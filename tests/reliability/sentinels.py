"""A Redis primary, a replica and three Sentinels on loopback (or on a test network's address too), with passwords:
the smallest group that fails over."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from lepton_runtime.settings import LeptonSettings
from tests.queue_fixtures import free_port
from workers.embedded import START_TIMEOUT_S, LocalRedis, find_redis_server

SERVICE = "lepton"
LOOPBACK = "127.0.0.1"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelGroup:
    """``start`` brings up the primary, its replica and the Sentinels and waits until they see each other.

    ``primary`` and ``replica`` follow the roles: after ``wait_for_failover`` the promoted server is ``primary``
    and the killed one ``replica``, which ``rejoin`` starts again as the new primary's replica.

    ``address``: where every server listens besides loopback and how the group names its servers to clients (a test
    network's host end, tests/reliability/network.py, for clients in network namespaces); loopback by default."""

    def __init__(self, root: Path, address: str = LOOPBACK) -> None:
        self.root = root
        self.address = address
        self.password = f"redis-{uuid.uuid4().hex}"
        self.sentinel_password = f"sentinel-{uuid.uuid4().hex}"
        also_bind = () if address == LOOPBACK else (address,)
        self.primary = LocalRedis(
            free_port(), root / "primary", password=self.password, extra_config=self._common, also_bind=also_bind
        )
        self.replica = LocalRedis(free_port(), root / "replica", password=self.password, also_bind=also_bind)
        self.replica.extra_config = self._replica_config()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def _common(self) -> str:
        # the first full sync at once (Redis waits 5 s for more replicas by default); a replica is named by address
        return f'masterauth "{self.password}"\nrepl-diskless-sync-delay 0\nreplica-announce-ip {self.address}\n'

    def _replica_config(self) -> str:
        return f"{self._common}replicaof {self.address} {self.primary.port}\n"

    @property
    def env(self) -> dict[str, str]:
        """The LEPTON_* variables of every process of the fleet (no LEPTON_REDIS_URL is needed)."""
        return {
            "LEPTON_REDIS_SENTINELS": ",".join(f"{self.address}:{port}" for port in self.sentinel_ports),
            "LEPTON_REDIS_SERVICE": SERVICE,
            "LEPTON_REDIS_PASSWORD": self.password,
            "LEPTON_REDIS_SENTINEL_PASSWORD": self.sentinel_password,
        }

    def settings(self, **values: Any) -> LeptonSettings:
        """The settings of a client of the group (it asks the Sentinels; no LEPTON_REDIS_URL), with ``values``."""
        return LeptonSettings(
            redis_sentinels=self.env["LEPTON_REDIS_SENTINELS"], redis_service=SERVICE,
            redis_password=SecretStr(self.password), redis_sentinel_password=SecretStr(self.sentinel_password),
            **values,
        )  # fmt: skip

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        for port in self.sentinel_ports:
            directory = self.root / f"sentinel-{port}"
            directory.mkdir(parents=True)
            config = directory / "sentinel.conf"
            config.touch(mode=0o600)
            config.write_text(
                f"port {port}\nbind {' '.join(dict.fromkeys((LOOPBACK, self.address)))}\ndir {directory}\n"
                f"logfile {directory / 'sentinel.log'}\nsentinel announce-ip {self.address}\n"
                f'requirepass "{self.sentinel_password}"\n'
                f"sentinel monitor {SERVICE} {self.address} {self.primary.port} {QUORUM}\n"
                f'sentinel auth-pass {SERVICE} "{self.password}"\n'
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    [find_redis_server(), str(config), "--sentinel"], stdin=subprocess.DEVNULL, start_new_session=True
                )
            )
        self._wait_until(self._replica_in_sync, "see the replica in sync with the primary")

    def sentinel(self, index: int = 0) -> redis.Redis:
        port = self.sentinel_ports[index]
        return redis.Redis(port=port, password=self.sentinel_password, decode_responses=True, socket_timeout=2)

    def primary_port(self) -> int | None:
        """The port of the primary as the first Sentinel that answers names it."""
        for index in range(len(self.sentinel_ports)):
            with contextlib.suppress(redis.RedisError), self.sentinel(index) as client:
                address = client.sentinel_get_master_addr_by_name(SERVICE)
                return int(address[1]) if address else None
        return None

    def kill_primary(self) -> int:
        """SIGKILL the primary (no shutdown, no last write); returns its port."""
        assert self.primary.process is not None
        self.primary.process.send_signal(signal.SIGKILL)
        self.primary.process.wait()
        return self.primary.port

    def cut_and_pause_replica(self) -> None:
        """The replica is SIGSTOPped, then the primary drops its link to it: the primary goes on accepting writes
        the replica never receives (a stopped replica alone would find them in its socket buffer when continued).
        In this order a stopped replica cannot reconnect in between (cutting the link from the replica's side
        first raced its reconnection, and a test then found no write lost)."""
        assert self.replica.process is not None
        self.replica.process.send_signal(signal.SIGSTOP)
        with redis.Redis(port=self.primary.port, password=self.password, socket_timeout=5) as client:
            client.client_kill_filter(_type="replica")

    def continue_replica(self) -> None:
        assert self.replica.process is not None
        self.replica.process.send_signal(signal.SIGCONT)

    def replication_offset(self, server: LocalRedis) -> int:
        """How far ``server`` is in the primary's write stream (bytes), as it says itself."""
        with redis.Redis(port=server.port, password=self.password, socket_timeout=5) as client:
            return int(client.info("replication")["master_repl_offset"])

    def wait_for_failover(self, timeout_s: float = 30) -> int:
        """Block until the Sentinels name the replica as the primary and it accepts writes; returns its port.
        The roles swap: the promoted server is ``primary`` now, the killed one ``replica``."""
        self._wait_until(lambda: self.primary_port() == self.replica.port and self._writable(self.replica.port),
                         "promote the replica", timeout_s)  # fmt: skip
        self.primary, self.replica = self.replica, self.primary
        return self.primary.port

    def rejoin(self) -> None:
        """Start the killed server again as the replica of the new primary (its old data replaced by a full
        sync) and wait until it is in sync and every Sentinel sees it: the group can fail over again."""
        assert self.replica.process is not None and self.replica.process.poll() is not None, "kill it first"
        self.replica.extra_config = self._replica_config()
        self.replica.start()
        self._wait_until(self._replica_in_sync, "see the rejoined replica in sync with the primary")

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait()
        for server in (self.replica, self.primary):
            with contextlib.suppress(Exception):
                server.stop()

    def _replica_in_sync(self) -> bool:
        """The replica's link to the primary is up and every Sentinel knows both."""
        with (
            contextlib.suppress(redis.RedisError),
            redis.Redis(port=self.replica.port, password=self.password) as replica,
        ):
            if replica.info("replication").get("master_link_status") != "up":
                return False
        for index in range(len(self.sentinel_ports)):
            with contextlib.suppress(redis.RedisError), self.sentinel(index) as client:
                if self.primary_port() != self.primary.port or not any(
                    int(known["port"]) == self.replica.port and not known["is_sdown"]
                    for known in client.sentinel_slaves(SERVICE)
                ):
                    return False
                continue
            return False
        return True

    def _writable(self, port: int) -> bool:
        with contextlib.suppress(redis.RedisError), redis.Redis(port=port, password=self.password) as client:
            return client.info("replication")["role"] == "master"
        return False

    @staticmethod
    def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Sentinels did not {what} within {timeout_s:.0f} s")
            time.sleep(0.1)  # Sentinels gossip on their own clock: nothing to wait on but their answers
