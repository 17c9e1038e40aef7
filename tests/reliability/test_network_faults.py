"""Network faults: a worker on a host of its own (a network namespace behind a veth link) is cut off from
Redis in the middle of a chunk and rejoined later; its chunk goes to another worker, and the output of the job
holds every input exactly once, also after the cut-off worker comes back and finishes what it held."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from lepton_runtime.constants import REDIS_KEY_PREFIX
from lepton_runtime.jobs.dead_letters import DeadLetterStore
from lepton_runtime.jobs.keys import JobKeys
from lepton_runtime.jobs.schemas import JobStatus
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, WORKER_READY_TIMEOUT_S, free_port
from tests.reliability.conftest import Figures
from tests.reliability.network import isolated_host, namespaces_unavailable
from workers.embedded import LocalRedis
from workers.processes import WorkerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(why := namespaces_unavailable()), reason=f"network namespaces: {why}"),
]

TEXTS = 24_000
# Long chunks of long texts (about a second each): the cut lands while the chunk computes, not as it is stored.
CHUNK_SIZE = 3000


def test_a_worker_cut_off_mid_chunk_loses_nothing_and_duplicates_nothing(
    published: ModelVersion, banking: LabelledTexts, tmp_path: Path, figures: Figures
) -> None:
    password = f"redis-{uuid.uuid4().hex}"  # Redis listens beyond loopback here, so it has a password
    models = published.path.parent.parent
    longest = sorted(banking.texts, key=len, reverse=True)[:200]
    texts = (longest * (TEXTS // len(longest) + 1))[:TEXTS]
    with isolated_host() as host:
        server = LocalRedis(free_port(), tmp_path / "redis", password=password, also_bind=(host.host_address,))
        url = server.start()
        env = {**os.environ, **TEST_LIMITS, "LEPTON_MODEL_DIR": str(models)}
        arguments = ["--threads", "1", "--warm", "tiny@production"]
        isolated = WorkerProcess({**env, "LEPTON_REDIS_URL": server.url_at(host.host_address)},
                                 tmp_path / "isolated.log", arguments=arguments, name_prefix="isolated",
                                 cwd=REPO_ROOT, run_through=host.run_through)  # fmt: skip
        rescuers: list[WorkerProcess] = []
        try:
            isolated.wait_ready(WORKER_READY_TIMEOUT_S)
            settings = LeptonSettings(redis_url=SecretStr(url), model_dir=models)
            with LeptonClient(settings) as client:
                job = client.submit_bulk(texts, model="tiny", chunk_size=CHUNK_SIZE)
                cut_chunks: list[int] = []

                def cut_mid_chunk(status: JobStatus) -> None:
                    if cut_chunks or status.done_chunks < 1:
                        return
                    states = client.redis.hgetall(JobKeys(job.id).chunk_states)
                    if running := [int(index) for index, state in states.items() if state == "running"]:
                        host.cut()  # the isolated worker holds this chunk and can no longer reach Redis
                        cut_chunks.extend(running)
                        rescuer = WorkerProcess({**env, "LEPTON_REDIS_URL": url}, tmp_path / "rescuer.log",
                                                arguments=arguments, name_prefix="rescuer", cwd=REPO_ROOT)  # fmt: skip
                        rescuers.append(rescuer)
                        rescuer.wait_ready(WORKER_READY_TIMEOUT_S)

                status = client.jobs.wait(job.id, 300, on_progress=cut_mid_chunk, progress_interval_s=0.02)
                assert cut_chunks, "the job finished before a chunk could be caught running"
                assert status.state == "succeeded", status.failures
                runs = client.jobs.chunk_runs(job.id)
                assert runs[cut_chunks[0]] == 2, f"chunk {cut_chunks[0]} was redelivered to the rescuer: {runs}"
                assert [row["id"] for row in client.results(job.id)] == [str(i) for i in range(TEXTS)]

                # the cut-off worker comes back alone: it must reconnect and run the next job by itself
                rescuers[0].stop()
                host.rejoin()
                rejoined_at = time.monotonic()
                second = client.submit_bulk(texts[:6000], model="tiny", chunk_size=CHUNK_SIZE)
                assert client.wait(second.id, 300).state == "succeeded", isolated.log_tail()
                back_s = time.monotonic() - rejoined_at

                # what it held when it was cut off changed nothing: same output, no failure, no dead letter
                status = client.jobs.status(job.id)
                assert (status.state, status.failed_chunks, status.failures) == ("succeeded", 0, [])
                assert [row["id"] for row in client.results(job.id)] == [str(i) for i in range(TEXTS)]
                assert DeadLetterStore(client.redis).list() == []
                assert client.redis.hlen(f"{REDIS_KEY_PREFIX}unacked") == 0
                assert isolated.process.poll() is None, "the cut-off worker survived the partition"
        finally:
            for worker in [isolated, *rescuers]:
                worker.stop()
            server.stop()
    section = "Network faults"
    figures.add(section, "worker in its own network namespace cut off mid-chunk (veth down)", f"chunk {cut_chunks[0]}")
    figures.add(section, "that chunk redelivered to another worker and run again", f"{runs[cut_chunks[0]]} runs")
    figures.add(section, "inputs answered exactly once, in order", f"{TEXTS:,} of {TEXTS:,}, also after the rejoin")
    figures.add(section, "failed chunks, dead letters, unacknowledged messages", "0, 0, 0")
    figures.add(
        section, "rejoined worker finished a new 6,000-text job alone", f"{back_s:.1f} s after the link came up"
    )
