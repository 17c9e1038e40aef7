"""Celery's own command line works against a running fleet: ``celery -A workers inspect ...`` finds the app
built from the LEPTON_* settings (workers/celery.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.queue_fixtures import REPO_ROOT
from workers.processes import WorkerProcess


def _celery(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    celery = str(Path(sys.executable).with_name("celery"))
    return subprocess.run(
        [celery, "-A", "workers", *arguments], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_celery_inspect_ping_and_active_queues_answer_from_running_workers(
    queue_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    env = {**os.environ, **queue_env}
    ping = _celery(env, "inspect", "ping", "--timeout", "5", "--json")
    assert ping.returncode == 0, ping.stderr
    assert worker.name in ping.stdout and '"ok": "pong"' in ping.stdout
    queues = _celery(env, "inspect", "active_queues", "--timeout", "5", "--json")
    assert queues.returncode == 0, queues.stderr
    assert worker.name in queues.stdout and '"name": "lepton.inference"' in queues.stdout
