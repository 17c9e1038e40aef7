"""A fleet across hosts: two worker hosts (network namespaces behind veth links, separate model caches, no shared
filesystem) read their models from an object store on the services host. A bulk job spreads over both; a new version
is published and promoted mid-job while one-text clients run; then one worker host is cut off. The job finishes
exactly once with the version it was submitted with; no one-text request fails; the new version answers within 10 s.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from lepton_runtime.constants import BULK_CHUNK_TASK
from lepton_runtime.jobs.schemas import JobStatus
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion, open_registry
from producer import LeptonClient
from tests.one_text_clients import OneTextClients
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, WORKER_READY_TIMEOUT_S, free_port
from tests.reliability.conftest import Figures
from tests.reliability.network import isolated_host, namespaces_unavailable
from tests.store_fixtures import S3Server, copy_into
from workers.embedded import LocalRedis
from workers.processes import WorkerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(why := namespaces_unavailable()), reason=f"network namespaces: {why}"),
]

TEXTS = 20_000
CHUNK_SIZE = 500
CLIENTS = 8
SWITCH_WITHIN_S = 10.0


def test_two_worker_hosts_share_a_job_through_a_promotion_and_a_cut_link(
    s3_credentials: None, published: ModelVersion, banking: LabelledTexts, tmp_path: Path, figures: Figures
) -> None:
    password = f"redis-{uuid.uuid4().hex}"  # Redis listens beyond loopback here, so it has a password
    longest = sorted(banking.texts, key=len, reverse=True)[:200]  # long texts: chunks take a while on each host
    texts = (longest * (TEXTS // len(longest) + 1))[:TEXTS]
    with ExitStack() as stack:
        hosts = [stack.enter_context(isolated_host(index)) for index in range(2)]
        store = S3Server(bind="0.0.0.0").start()
        stack.callback(store.stop)
        bucket = store.new_bucket()
        server = LocalRedis(free_port(), tmp_path / "redis", password=password,
                            also_bind=tuple(host.host_address for host in hosts))  # fmt: skip
        url = server.start()
        stack.callback(server.stop)
        settings = bucket.settings(url, tmp_path / "producer-cache")
        publisher = open_registry(settings)
        copy_into(publisher, published, "tiny")
        publisher.promote("tiny@1")

        workers = []
        for index, host in enumerate(hosts):
            env = {
                **os.environ, **TEST_LIMITS, "LEPTON_REDIS_URL": server.url_at(host.host_address),
                "LEPTON_MODEL_STORE": bucket.url, "LEPTON_S3_ENDPOINT_URL": store.endpoint_at(host.host_address),
                "LEPTON_MODEL_CACHE_DIR": str(tmp_path / f"host-{index}" / "cache"),
            }  # fmt: skip
            env.pop("LEPTON_MODEL_DIR", None)  # nothing shared on disk: the store only
            worker = WorkerProcess(env, tmp_path / f"host-{index}.log", arguments=["--threads", "1", "--warm",
                                   "tiny@production"], name_prefix=f"host{index}", cwd=REPO_ROOT,
                                   run_through=host.run_through)  # fmt: skip
            stack.callback(worker.stop)
            workers.append(worker)
        for worker in workers:
            worker.wait_ready(WORKER_READY_TIMEOUT_S)

        clients = stack.enter_context(OneTextClients(settings, "tiny", CLIENTS, pause_s=0.05))

        with LeptonClient(settings) as client:
            job = client.submit_bulk(texts, model="tiny", chunk_size=CHUNK_SIZE)
            events: dict[str, float] = {}

            def drive(status: JobStatus) -> None:
                now = time.monotonic()
                if "promoted" not in events and status.done_chunks >= 3:
                    copy_into(publisher, published, "tiny")
                    events["promoting"] = now
                    publisher.promote("tiny@2")
                    events["promoted"] = time.monotonic()
                elif "cut" not in events and "promoted" in events and status.done_chunks >= status.total_chunks // 2:
                    hosts[0].cut()  # host 0 holds chunks it can no longer report: they come back to host 1
                    events["cut"] = now

            status = client.jobs.wait(job.id, 600, on_progress=drive, progress_interval_s=0.05)
            clients.wait_for_one_sent_after(events["promoted"] + SWITCH_WITHIN_S + 1)
            clients.stop()

            assert "cut" in events, "the job finished before host 0 could be cut off"
            assert status.state == "succeeded", status.failures
            rows = list(client.results(job.id))
            assert [row["id"] for row in rows] == [str(i) for i in range(TEXTS)]  # each text once, in order
            assert {row["model"]["version"] for row in rows} == {1}  # the version resolved at submit
            chunks_by_host = [_chunks_run(worker.log_path) for worker in workers]
            assert all(chunks_by_host), f"each host ran chunks: {chunks_by_host}"
            hosts[0].rejoin()  # what host 0 held when it was cut off changes nothing
            client.jobs.wait(job.id, 60)
            assert [row["id"] for row in client.results(job.id)] == [str(i) for i in range(TEXTS)]

        assert clients.failures == []
        after = clients.versions_sent(after=events["promoted"] + SWITCH_WITHIN_S)
        before = clients.versions_sent(before=events["promoting"])
        assert set(before) == {1} and after and set(after) == {2}
        caches = [tmp_path / f"host-{index}" / "cache" for index in range(2)]
        assert all((cache / "tiny").is_dir() for cache in caches)  # each host filled its own cache from the store
        shutil.rmtree(tmp_path / "producer-cache", ignore_errors=True)

    section = "A fleet across hosts (object store)"
    figures.add(section, "bulk job over 2 worker hosts (separate caches, models from the store)",
                f"{TEXTS:,} texts once, in order; chunks per host {chunks_by_host}")  # fmt: skip
    figures.add(section, "promotion mid-job", "every bulk row names tiny@1 (resolved at submit)")
    answered = f"{len(clients.answers):,} answered, 0 failed; all tiny@2 from {SWITCH_WITHIN_S:.0f} s after it"
    figures.add(section, f"{CLIENTS} one-text clients through the promotion", answered)
    figures.add(section, "host 0 cut off after the switch", "its chunks finished on host 1, nothing lost or twice")


def _chunks_run(log: Path) -> int:
    return len(re.findall(rf"Task {re.escape(BULK_CHUNK_TASK)}\[[^\]]+\] succeeded", log.read_text()))
