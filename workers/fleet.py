"""The embedded fleet of ``lepton up``: a local Redis (unless one is configured), an inference worker, a training
worker and Flower."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lepton_runtime.constants import TRAINING_QUEUE
from lepton_runtime.jobs import connect_with, redacted
from lepton_runtime.settings import LeptonSettings
from workers.embedded import LocalRedis
from workers.processes import WARM_SHUTDOWN_TIMEOUT_S, ChildProcess, WorkerProcess


@dataclass
class FleetOptions:
    data_dir: Path
    redis_port: int
    concurrency: int = 1
    flower: bool = True
    flower_port: int = 5555
    trainer: bool = True
    worker_args: list[str] = field(default_factory=list)


class Fleet:
    """Start in order (Redis, workers, Flower), stop in reverse; ``stop`` is safe to call at any point."""

    def __init__(self, options: FleetOptions, configured: LeptonSettings | None) -> None:
        """``configured``: settings that name a Redis (LEPTON_REDIS_URL or LEPTON_REDIS_SENTINELS); None: start one."""
        self.options = options
        self.configured = configured
        self.redis: LocalRedis | None = None
        self.children: list[tuple[str, ChildProcess]] = []
        self.url = configured.broker_url if configured else ""
        self.log_dir = options.data_dir / "logs"

    def start(self, report: Callable[[str], None] = print) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)  # a configured Redis: the children read the same LEPTON_* variables
        if self.configured is None:
            _refuse_if_port_taken(self.options.redis_port)
            self.redis = LocalRedis(self.options.redis_port, self.options.data_dir / "redis")
            self.url = env["LEPTON_REDIS_URL"] = self.redis.start()
            report(f"redis    {self.url} (append-only file in {self.redis.data_dir})")
        else:
            with connect_with(self.configured) as client:
                client.ping()
            source = "LEPTON_REDIS_SENTINELS" if self.configured.redis_sentinels else "LEPTON_REDIS_URL"
            report(f"redis    {redacted(self.url)} ({source})")
        worker = WorkerProcess(
            env,
            self.log_dir / "worker.log",
            processes=self.options.concurrency,
            arguments=self.options.worker_args,
            name_prefix="lepton-up",
        )
        self.children.append(("worker", worker))
        worker.wait_ready()
        report(f"worker   {worker.name}: {worker.processes} processes, log {worker.log_path}")
        if self.options.trainer:
            # a process of its own: the training queue's visibility timeout is hours, the inference one's a 20 s lease
            trainer = WorkerProcess(
                env, self.log_dir / "trainer.log", processes=1, arguments=["-Q", TRAINING_QUEUE],
                name_prefix="lepton-up",
            )  # fmt: skip
            self.children.append(("trainer", trainer))
            trainer.wait_ready()
            report(f"trainer  {trainer.name}: {TRAINING_QUEUE}, log {trainer.log_path}")
        if self.options.flower:
            flower = ChildProcess(["flower", "--port", str(self.options.flower_port)], env, self.log_dir / "flower.log")
            self.children.append(("flower", flower))
            report(f"flower   http://127.0.0.1:{self.options.flower_port} (log {flower.log_path})")

    def wait(self) -> str:
        """Block until a child (Redis, worker, Flower) exits by itself; return its name. Ctrl-C interrupts."""
        processes = [(name, child.process) for name, child in self.children]
        if self.redis is not None and self.redis.process is not None:
            processes.append(("redis", self.redis.process))
        pid, status = os.wait()
        for name, process in processes:
            if process.pid == pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                return name
        return f"process {pid}"

    def stop(self) -> None:
        """Warm shutdown of the worker, then Flower, then Redis (SHUTDOWN flushes its append-only file)."""
        for name, child in reversed(self.children):
            child.stop(WARM_SHUTDOWN_TIMEOUT_S if name in {"worker", "trainer"} else 10)
        self.children.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def _refuse_if_port_taken(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(
                f"port {port} on 127.0.0.1 is taken (another `lepton up`?); stop it, choose --redis-port, "
                "or set LEPTON_REDIS_URL to use a running Redis"
            )
