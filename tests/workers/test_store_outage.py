"""The model store down and back: a worker with the model cached keeps answering; a worker without it says it is not
ready (store_unavailable) and leaves the requests to the other; when the store answers again it loads and serves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from lepton_runtime.jobs.fleet_status import ProcessStatus
from lepton_runtime.registry import ModelVersion, open_registry
from producer import LeptonClient
from tests.store_fixtures import ObjectStore, StoreLink, copy_into
from workers.processes import WorkerProcess

WAIT_S = 60


def wait_for_fleet(client: LeptonClient, done: Callable[[list[ProcessStatus]], bool]) -> list[ProcessStatus]:
    deadline = time.monotonic() + WAIT_S
    while not done(processes := client.fleet()):
        assert time.monotonic() < deadline, f"the fleet did not get there: {processes}"
        time.sleep(0.1)
    return processes


def test_a_store_outage_fails_no_request_and_a_worker_without_the_model_waits_for_the_store(
    object_store: ObjectStore,
    published: ModelVersion,
    start_worker: Callable[..., WorkerProcess],
    redis_url: str,
    tmp_path: Path,
) -> None:
    publisher = open_registry(object_store.settings(redis_url, tmp_path / "publisher-cache"))
    copy_into(publisher, published, "tiny")
    publisher.promote("tiny@1")
    link = StoreLink(int(object_store.endpoint_url.rsplit(":", 1)[1])).up()  # the store as the workers see it
    try:
        settings = object_store.settings(redis_url, tmp_path / "producer-cache", endpoint_url=link.endpoint_url)
        store_env = {"LEPTON_MODEL_STORE": object_store.url, "LEPTON_S3_ENDPOINT_URL": link.endpoint_url}
        start_worker(env={**store_env, "LEPTON_MODEL_CACHE_DIR": str(tmp_path / "cached")})
        with LeptonClient(settings) as client:
            assert client.classify(["my card was declined"], model="tiny").wait(WAIT_S)  # resolved while it answers

            link.down()
            start_worker(env={**store_env, "LEPTON_MODEL_CACHE_DIR": str(tmp_path / "empty")})
            processes = wait_for_fleet(client, lambda found: len(found) == 2 and any(not p.ready for p in found))
            (lacking,) = [process for process in processes if not process.ready]
            assert lacking.problems["tiny@production"].startswith("store_unavailable:")
            assert lacking.loaded == [] and lacking.store_error is not None

            failures: list[str] = []
            answered = 0

            def one_text_client() -> None:
                nonlocal answered
                for _ in range(25):
                    try:
                        client_answer = client.classify(["how do I top up?"], model="tiny").wait(WAIT_S)
                        assert client_answer[0].model.version == 1
                        answered += 1
                    except Exception as error:  # counted, never hidden
                        failures.append(f"{type(error).__name__}: {error}")

            threads = [threading.Thread(target=one_text_client) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=WAIT_S * 2)
            assert failures == [] and answered == 100  # the worker with the copy answered all of them

            link.up()  # the store answers again: the lacking worker loads the model and is ready
            wait_for_fleet(client, lambda found: len(found) == 2 and all(
                p.ready and p.store_error is None and "tiny@1" in p.loaded for p in found
            ))  # fmt: skip
    finally:
        link.down()
