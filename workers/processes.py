"""Lepton processes run as children (workers, Flower): each in its own process group, awaited through
Redis when it says it is ready, stopped warm (SIGTERM) and then for good (SIGKILL to the group)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import redis
from pydantic import SecretStr

from lepton_runtime.jobs import connect, connect_with
from lepton_runtime.jobs.keys import worker_ready_key
from lepton_runtime.settings import LeptonSettings

# How long a worker may take to start and warm its models.
WORKER_READY_TIMEOUT_S = 180.0
# How long a worker may finish its current tasks after SIGTERM (warm shutdown) before it is killed.
WARM_SHUTDOWN_TIMEOUT_S = 30.0


class ChildProcess:
    """``python -m lepton_runtime ARGUMENTS`` with its output in ``log_path``; ``run_through``: a command that
    runs it (``ip netns exec NAME`` puts it in a network namespace)."""

    def __init__(
        self,
        arguments: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
        run_through: Sequence[str] = (),
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*run_through, sys.executable, "-m", "lepton_runtime", *arguments],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a terminal's Ctrl-C reaches only the parent
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout_s: float = WARM_SHUTDOWN_TIMEOUT_S) -> int:
        """SIGTERM (a worker finishes its tasks), then SIGKILL whatever is left of the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout_s)
        self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once (main process and pool), like a machine losing power."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:]


class WorkerProcess(ChildProcess):
    """A `lepton worker` whose pool processes announce themselves in Redis once their models are warm."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        processes: int = 1,
        arguments: Sequence[str] = (),
        name_prefix: str = "lepton",
        cwd: Path | None = None,
        run_through: Sequence[str] = (),
    ) -> None:
        self.name = f"{name_prefix}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        self.processes = processes
        self.env = env
        with redis_of(env) as client:
            client.delete(worker_ready_key(self.name))
        command = ["worker", "--name", self.name, "--concurrency", str(processes), *arguments]
        super().__init__(command, env, log_path, cwd, run_through)

    def wait_ready(self, timeout_s: float = WORKER_READY_TIMEOUT_S) -> None:
        """Block until every pool process announced itself; raise if the worker dies or takes too long."""
        announced, waited_s = 0, 0.0
        with redis_of(self.env) as client:
            while announced < self.processes:
                try:
                    popped = client.blpop([worker_ready_key(self.name)], timeout=1)
                except (redis.ConnectionError, redis.TimeoutError):  # Redis restarting or failing over: ask again
                    popped = None
                    time.sleep(1)  # counted as a second of the wait below
                if popped:
                    announced += 1
                elif self.process.poll() is not None:
                    raise RuntimeError(f"worker {self.name} exited ({self.process.returncode}):\n{self.log_tail()}")
                elif (waited_s := waited_s + 1) >= timeout_s:
                    raise RuntimeError(f"worker {self.name} not ready after {timeout_s:.0f} s; see {self.log_path}")


def redis_of(env: dict[str, str]) -> redis.Redis:
    """A client of the Redis that the LEPTON_* variables of ``env`` name (a URL, or Sentinels and their service)."""
    if sentinels := env.get("LEPTON_REDIS_SENTINELS"):
        password, sentinel_password = env.get("LEPTON_REDIS_PASSWORD"), env.get("LEPTON_REDIS_SENTINEL_PASSWORD")
        settings = LeptonSettings(
            redis_sentinels=sentinels,
            redis_service=env.get("LEPTON_REDIS_SERVICE") or "lepton",
            redis_password=SecretStr(password) if password else None,
            redis_sentinel_password=SecretStr(sentinel_password) if sentinel_password else None,
        )
        return connect_with(settings)
    return connect(env["LEPTON_REDIS_URL"])
