"""Flower as an operator sees it: headless Chromium logs in with the password and finds the worker and the
running job's tasks by name (a screenshot is kept in test-artifacts/); without the password nothing answers;
the interactive lane's batches are listed under a name of their own; each chunk task says how far its job is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lepton_runtime.constants import BULK_CHUNK_TASK, CLASSIFY_TASK, INTERACTIVE_BATCH_EVENT_NAME
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, free_port
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
USER, PASSWORD = "ops", "flower-password-123"
ARTIFACTS = REPO_ROOT / "test-artifacts"
FLOWER_TIMEOUT_S = 60


@pytest.fixture
def flower(queue_env: dict[str, str], tmp_path: Path) -> Iterator[httpx.Client]:
    port = free_port()
    env = {**os.environ, **queue_env, "LEPTON_FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"}
    log = tmp_path / "flower.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "lepton_runtime", "flower", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(USER, PASSWORD), timeout=30)
    deadline = time.monotonic() + FLOWER_TIMEOUT_S
    while True:  # until its socket answers (or it dies)
        try:
            http.get("/healthcheck").raise_for_status()
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"flower did not start:\n{log.read_text()}") from None
            time.sleep(0.1)  # polling a socket that is not open yet
    yield http
    http.close()
    process.terminate()
    process.wait(30)


def wait_until_flower_sees_tasks(http: httpx.Client, client: LeptonClient) -> None:
    """Send bulk-lane requests (Celery tasks: interactive ones are not) until Flower's task list shows one: its
    event receiver is then connected."""
    deadline = time.monotonic() + FLOWER_TIMEOUT_S
    while time.monotonic() < deadline:
        job = client.classify(["probe"], model="tiny", lane="bulk")
        job.wait(30)
        if job.id in http.get("/api/tasks").json():
            return
    raise AssertionError("Flower never listed a task: are task events on (`-E`)?")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_flower_shows_the_worker_and_the_running_job_to_a_logged_in_browser(
    start_worker: Callable[..., WorkerProcess],
    flower: httpx.Client,
    queue_settings: LeptonSettings,
    banking: LabelledTexts,
) -> None:
    from playwright.sync_api import sync_playwright

    worker = start_worker()
    anonymous = httpx.get(f"{flower.base_url}/", timeout=10)
    assert anonymous.status_code == 401, "Flower must not answer without its password"
    assert httpx.get(f"{flower.base_url}/metrics", timeout=10).status_code == 401
    with LeptonClient(queue_settings) as client:
        wait_until_flower_sees_tasks(flower, client)
        job = client.submit_bulk(banking.texts * 15, model="tiny", chunk_size=16)  # 1,800 chunks: tens of seconds
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(http_credentials={"username": USER, "password": PASSWORD})
            page.goto(f"{flower.base_url}/workers")
            page.get_by_text(worker.name).first.wait_for(timeout=30_000)
            page.goto(f"{flower.base_url}/tasks")
            page.get_by_text(job.id).first.wait_for(timeout=30_000)  # the chunk ids name their job
            assert client.status(job.id).state in {"queued", "running"}, "the job should still be running"
            assert page.get_by_text("lepton.bulk.chunk").count() > 0
            page.screenshot(path=str(ARTIFACTS / "flower-tasks.png"), full_page=True)
            browser.close()
        assert job.wait(300).state == "succeeded"
    assert (ARTIFACTS / "flower-tasks.png").stat().st_size > 10_000


def test_flower_lists_the_interactive_lanes_batches_apart_from_the_bulk_lanes_tasks(
    start_worker: Callable[..., WorkerProcess], flower: httpx.Client, queue_settings: LeptonSettings
) -> None:
    worker = start_worker()
    batches: dict[str, dict[str, object]] = {}
    with LeptonClient(queue_settings) as client:
        wait_until_flower_sees_tasks(flower, client)
        deadline = time.monotonic() + FLOWER_TIMEOUT_S
        while not batches and time.monotonic() < deadline:
            answers = client.classify(["a gorgeous film"], model="tiny", tenant="shop").wait(30)
            assert all(hasattr(answer, "label") for answer in answers)
            batches = flower.get("/api/tasks", params={"taskname": INTERACTIVE_BATCH_EVENT_NAME}).json()
    assert batches, "Flower never listed a batch of the interactive lane"
    batch = next(iter(batches.values()))
    assert batch["state"] == "SUCCESS" and batch["worker"] == worker.name
    assert "1 answered" in str(batch["result"]) and "shop" in str(batch["args"])
    assert isinstance(batch["runtime"], float) and batch["runtime"] > 0
    metrics = flower.get("/metrics").text
    assert re.search(rf'flower_task_runtime_seconds_count{{[^}}]*task="{INTERACTIVE_BATCH_EVENT_NAME}"', metrics)
    assert re.search(rf'flower_task_runtime_seconds_count{{[^}}]*task="{CLASSIFY_TASK}"', metrics)


def test_flower_shows_how_far_each_chunks_job_is(
    start_worker: Callable[..., WorkerProcess],
    flower: httpx.Client,
    queue_settings: LeptonSettings,
    banking: LabelledTexts,
) -> None:
    start_worker()
    with LeptonClient(queue_settings) as client:
        wait_until_flower_sees_tasks(flower, client)
        job = client.submit_bulk(banking.texts[:256], model="tiny", chunk_size=64)  # 4 chunks
        assert job.wait(120).state == "succeeded"
    chunks: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + FLOWER_TIMEOUT_S
    while len(chunks) < 4 and time.monotonic() < deadline:
        listed = flower.get("/api/tasks", params={"taskname": BULK_CHUNK_TASK}).json()
        chunks = {key: task for key, task in listed.items() if job.id in key and task["state"] == "SUCCESS"}
        time.sleep(0.1)  # polling Flower's view of the events it has received so far
    assert len(chunks) == 4, f"Flower listed {len(chunks)} of the job's 4 chunks"
    for task in chunks.values():
        assert f"lepton jobs status {job.id}" in str(task["args"])  # where to look, from the task list
        assert re.search(rf"\d/4 chunks, [\d,]+/256 texts; lepton jobs status {job.id}", str(task["result"]))
    assert any("succeeded: 4/4 chunks, 256/256 texts" in str(task["result"]) for task in chunks.values())
