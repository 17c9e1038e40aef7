"""The embedded fleet of ``lepton up``: a local Redis (unless one is configured), one worker and Flower."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lepton_runtime.jobs import connect, redacted
from lepton_runtime.jobs.keys import worker_ready_key
from workers.embedded import LocalRedis

# How long a worker may take to start and warm its models before `lepton up` gives up.
WORKER_READY_TIMEOUT_S = 180.0
# How long a worker may finish its current tasks after SIGTERM (warm shutdown) before it is killed.
WARM_SHUTDOWN_TIMEOUT_S = 30.0


@dataclass
class FleetOptions:
    data_dir: Path
    redis_port: int
    concurrency: int = 1
    flower: bool = True
    flower_port: int = 5555
    worker_args: list[str] = field(default_factory=list)


class Fleet:
    """Start in order (Redis, worker, Flower), stop in reverse; ``stop`` is safe to call at any point."""

    def __init__(self, options: FleetOptions, configured_url: str | None) -> None:
        self.options = options
        self.configured_url = configured_url
        self.redis: LocalRedis | None = None
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.url = configured_url or ""
        self.worker_name = f"lepton-up-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        self.log_dir = options.data_dir / "logs"

    def start(self, report: Callable[[str], None] = print) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.configured_url is None:
            _refuse_if_port_taken(self.options.redis_port)
            self.redis = LocalRedis(self.options.redis_port, self.options.data_dir / "redis")
            self.url = self.redis.start()
            report(f"redis    {self.url} (append-only file in {self.redis.data_dir})")
        else:
            with connect(self.url) as client:
                client.ping()
            report(f"redis    {redacted(self.url)} (LEPTON_REDIS_URL)")
        env = {**os.environ, "LEPTON_REDIS_URL": self.url}
        worker_command = [
            "worker", "--name", self.worker_name, "--concurrency", str(self.options.concurrency),
            *self.options.worker_args,
        ]  # fmt: skip
        worker = self._spawn("worker", worker_command, env)
        processes = self._wait_until_ready(worker)
        report(f"worker   {self.worker_name}: {processes} processes, log {self.log_dir / 'worker.log'}")
        if self.options.flower:
            self._spawn("flower", ["flower", "--port", str(self.options.flower_port)], env)
            report(f"flower   http://127.0.0.1:{self.options.flower_port} (log {self.log_dir / 'flower.log'})")

    def wait(self) -> str:
        """Block until a child (Redis, worker, Flower) exits by itself; return its name. Ctrl-C interrupts."""
        children = list(self.children)
        if self.redis is not None and self.redis.process is not None:
            children.append(("redis", self.redis.process))
        pid, status = os.wait()
        for name, child in children:
            if child.pid == pid:
                child.returncode = os.waitstatus_to_exitcode(status)
                return name
        return f"process {pid}"

    def stop(self) -> None:
        """Warm shutdown of the worker, then Flower, then Redis (SHUTDOWN flushes its append-only file)."""
        for name, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=WARM_SHUTDOWN_TIMEOUT_S if name == "worker" else 10)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
            _kill_group_leftovers(child.pid)
        self.children.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def _spawn(self, name: str, arguments: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        child = subprocess.Popen(
            [sys.executable, "-m", "lepton_runtime", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # our own process group: Ctrl-C reaches `lepton up`, which stops us in order
        )
        log.close()
        self.children.append((name, child))
        return child

    def _wait_until_ready(self, worker: subprocess.Popen[bytes]) -> int:
        """Wait for the worker's processes to announce themselves (they warm their models first)."""
        with connect(self.url) as client:
            client.delete(worker_ready_key(self.worker_name))
            announced = 0
            waited_s = 0.0
            while waited_s < WORKER_READY_TIMEOUT_S:
                popped = client.blpop([worker_ready_key(self.worker_name)], timeout=1)
                if popped:
                    announced += 1
                    if announced >= self.options.concurrency:
                        return announced
                elif worker.poll() is not None:
                    raise RuntimeError(
                        f"the worker exited with code {worker.returncode}; see {self.log_dir}/worker.log"
                    )
                else:
                    waited_s += 1
        raise RuntimeError(f"the worker was not ready after {WORKER_READY_TIMEOUT_S:.0f} s; see {self.log_dir}")


def _kill_group_leftovers(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _refuse_if_port_taken(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(
                f"port {port} on 127.0.0.1 is taken (another `lepton up`?); stop it, choose --redis-port, "
                "or set LEPTON_REDIS_URL to use a running Redis"
            )
