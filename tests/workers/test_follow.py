"""Rolling model updates from an object store: a promotion reaches a real worker and the clients within seconds, the
new version is loaded beside the old one before requests for it come, and no request fails through the switch."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from lepton_runtime.cli import cli
from lepton_runtime.registry import ModelVersion, open_registry
from producer import LeptonClient
from tests.one_text_clients import OneTextClients
from tests.store_fixtures import ObjectStore, copy_into
from workers.processes import WorkerProcess

CLIENTS = 8
# The promise: from this long after a promotion, every answer names the new version.
SWITCH_WITHIN_S = 10.0


def test_a_promotion_reaches_worker_and_clients_without_a_failed_request(
    object_store: ObjectStore,
    published: ModelVersion,
    start_worker: Callable[..., WorkerProcess],
    redis_url: str,
    tmp_path: Path,
) -> None:
    store_env = {"LEPTON_MODEL_STORE": object_store.url, "LEPTON_S3_ENDPOINT_URL": object_store.endpoint_url}
    settings = object_store.settings(redis_url, tmp_path / "producer-cache")
    publisher = open_registry(settings)  # as `lepton models promote` opens it: moves are told through Redis
    copy_into(publisher, published, "tiny")
    publisher.promote("tiny@1")
    worker = start_worker(env={**store_env, "LEPTON_MODEL_CACHE_DIR": str(tmp_path / "worker-cache")})

    with OneTextClients(settings, "tiny", CLIENTS) as clients:
        clients.wait_for_answers(50)  # every client is under way on tiny@1
        copy_into(publisher, published, "tiny")
        promoting_at = time.monotonic()
        publisher.promote("tiny@2")
        promoted_at = time.monotonic()
        clients.wait_for_one_sent_after(promoted_at + SWITCH_WITHIN_S + 1)

    assert clients.failures == []
    before = clients.versions_sent(before=promoting_at)
    after = clients.versions_sent(after=promoted_at + SWITCH_WITHIN_S)
    assert set(before) == {1} and len(before) >= 50
    assert after and set(after) == {2}
    log = worker.log_path.read_text()
    assert "tiny@production now names tiny@2: loaded and warmed" in log  # before the first request for it came

    # the fleet view: the process reports what it holds (every 5 s)
    with LeptonClient(settings) as client:
        deadline = time.monotonic() + 30
        while not (processes := client.fleet()) or processes[0].following.get("tiny@production") != "tiny@2":
            assert time.monotonic() < deadline, f"the worker did not report the switch: {processes}"
            time.sleep(0.1)
    (process,) = processes
    assert {"tiny@1", "tiny@2"} <= set(process.loaded) and process.behind == []
    assert process.cache_bytes and process.cache_bytes > 0 and process.store_error is None
    shown = CliRunner().invoke(cli, ["workers", "--json"], env={"LEPTON_REDIS_URL": redis_url}, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    (row,) = [json.loads(line) for line in shown.output.splitlines()]
    assert row["following"] == {"tiny@production": "tiny@2"} and row["pid"] == process.pid
