"""The embedded fleet of ``lepton up``: a local Redis (unless one is configured), an inference worker, a training
worker and Flower; one fleet per data folder (``fleet.lock``), and never a port another program holds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton_runtime.constants import EMBEDDED_REDIS_PORT, TRAINING_QUEUE
from lepton_runtime.errors import FleetConflictError
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
    metrics_port: int | None = None  # the inference worker's /metrics on loopback


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
        self.lock = FleetLock(options.data_dir)

    def start(self, report: Callable[[str], None] = print) -> None:
        """Refuse before starting anything when the data folder or a port is another's (saying what to do)."""
        self.lock.acquire(self.options, local_redis=self.configured is None)
        if self.configured is None:
            _refuse_if_port_taken(self.options.redis_port, "--redis-port", "or set LEPTON_REDIS_URL to a running Redis")
        if self.options.flower:
            _refuse_if_port_taken(self.options.flower_port, "--flower-port", "or start it with --no-flower")
        if self.options.metrics_port:
            _refuse_if_port_taken(self.options.metrics_port, "--metrics-port", "or leave it out")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)  # a configured Redis: the children read the same LEPTON_* variables
        if self.configured is None:
            self.redis = LocalRedis(self.options.redis_port, self.options.data_dir / "redis")
            self.url = env["LEPTON_REDIS_URL"] = self.redis.start()
            report(f"redis    {self.url} (append-only file in {self.redis.data_dir})")
            if self.options.redis_port != EMBEDDED_REDIS_PORT:  # clients look for the default port unless told
                report(f"clients  export LEPTON_REDIS_URL={self.url}")
        else:
            with connect_with(self.configured) as client:
                client.ping()
            source = "LEPTON_REDIS_SENTINELS" if self.configured.redis_sentinels else "LEPTON_REDIS_URL"
            report(f"redis    {redacted(self.url)} ({source})")
        port = self.options.metrics_port
        metrics = ["--metrics-port", str(port), "--metrics-address", "127.0.0.1"] if port else []
        worker = WorkerProcess(
            env,
            self.log_dir / "worker.log",
            processes=self.options.concurrency,
            arguments=[*self.options.worker_args, *metrics],
            name_prefix="lepton-up",
        )
        self.children.append(("worker", worker))
        worker.wait_ready()
        report(f"worker   {worker.name}: {worker.processes} processes, log {worker.log_path}")
        if self.options.metrics_port:
            report(f"metrics  http://127.0.0.1:{self.options.metrics_port}/metrics (the inference worker's)")
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
        self.lock.release()


class FleetLock:
    """One ``lepton up`` per data folder: an exclusive lock on ``<data_dir>/fleet.lock`` while the fleet runs (the
    kernel lets it go when the process ends, however it ends), holding the holder's pid and ports. Two fleets on one
    folder would share Redis's append-only file and the logs."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "fleet.lock"
        self._handle: Any = None

    def acquire(self, options: FleetOptions, local_redis: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the fleet's life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read()
            handle.close()
            raise FleetConflictError(_folder_taken(self.path.parent, holder)) from None
        handle.seek(0)
        handle.truncate()
        ports = {"redis_port": options.redis_port if local_redis else None,
                 "flower_port": options.flower_port if options.flower else None}  # fmt: skip
        handle.write(json.dumps({"pid": os.getpid(), **ports}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _folder_taken(data_dir: Path, holder_json: str) -> str:
    """What to do when another ``lepton up`` holds ``data_dir``: use it, stop it, or start a separate fleet."""
    try:
        holder = json.loads(holder_json)
    except ValueError:
        holder = {}
    pid, redis_port, flower_port = holder.get("pid", "?"), holder.get("redis_port"), holder.get("flower_port")
    where = [f"pid {pid}"]
    if redis_port:
        where.append(f"Redis on 127.0.0.1:{redis_port}")
    if flower_port:
        where.append(f"Flower on 127.0.0.1:{flower_port}")
    folder = _free_folder(data_dir)
    redis_free = _free_port_from(EMBEDDED_REDIS_PORT + 1)
    flower_free = _free_port_from((flower_port or 5555) + 1, avoid={redis_free})
    use = f" (its Redis: LEPTON_REDIS_URL=redis://127.0.0.1:{redis_port}/0)" if redis_port else ""
    return (
        f"another `lepton up` ({', '.join(where)}) runs on the data folder {data_dir.resolve()}: a second one there"
        f" would share its Redis files and logs. Use that fleet{use}; or stop it (Ctrl-C where it runs, or"
        f" `kill {pid}`); or start a separate fleet with its own data, logs and ports:\n"
        f"  lepton up --data-dir {folder} --redis-port {redis_free} --flower-port {flower_free}\n"
        f"and in the shells that use it: export LEPTON_REDIS_URL=redis://127.0.0.1:{redis_free}/0"
    )


def _free_folder(data_dir: Path) -> Path:
    """The first of ``<data_dir>-2``, ``-3``... that does not exist yet."""
    index = 2
    while (candidate := data_dir.with_name(f"{data_dir.name}-{index}")).exists():
        index += 1
    return candidate


def _free_port_from(port: int, avoid: set[int] | None = None) -> int:
    """The first port from ``port`` up that nothing on 127.0.0.1 listens on."""
    while port in (avoid or set()) or _taken(port):
        port += 1
    return port


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _refuse_if_port_taken(port: int, option: str, otherwise: str) -> None:
    if _taken(port):
        raise FleetConflictError(
            f"port {port} on 127.0.0.1 is taken by another program; give a free one: {option}"
            f" {_free_port_from(port + 1)}, {otherwise}"
        )
