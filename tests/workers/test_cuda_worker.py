"""A `lepton worker --device cuda` on a real GPU: boots, serves on the CUDA provider, and fails closed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT
from workers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.gpu]


def test_a_cuda_worker_classifies_on_the_gpu(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings
) -> None:
    start_worker(extra=["--device", "cuda"])
    with LeptonClient(queue_settings) as client:
        (prediction,) = client.classify(["a gorgeous, moving film"], model="tiny@production").wait(60)
    assert prediction.model.provider == "CUDAExecutionProvider"


def test_a_cuda_worker_with_no_gpu_visible_refuses_to_start(queue_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lepton_runtime", "worker", "--device", "cuda", "--warm", "tiny@production"],
        cwd=REPO_ROOT, env={**os.environ, **queue_env, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "provider_unavailable" in done.stderr
