"""Bulk jobs over datasets in an S3-compatible store (moto's server), through real Redis and real worker processes:
every id once in input order, the output readable as one Parquet dataset, nothing of the texts or rows in Redis,
and a small job not stuck behind a large one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import s3fs

from lepton_runtime.jobs.parts import MANIFEST_FILE
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.store_fixtures import S3Server, StoreLink
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow
WAIT_S = 180
# How long the data store is cut off in the outage test (s).
OUTAGE_S = 8
# The stretch over which two tenants' shares of the chunks done are counted (s).
FAIRNESS_STRETCH_S = 10


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket().url


@pytest.fixture
def store_env(queue_env: dict[str, str], s3_server: S3Server, bucket: str) -> dict[str, str]:
    return {**queue_env, "LEPTON_DATA_STORE": bucket, "LEPTON_S3_ENDPOINT_URL": s3_server.endpoint_url}


@pytest.fixture
def client(queue_settings: LeptonSettings, s3_server: S3Server, bucket: str) -> LeptonClient:
    settings = queue_settings.model_copy(update={"data_store": bucket, "s3_endpoint_url": s3_server.endpoint_url})
    return LeptonClient(settings)


def _write_parquet(fs: s3fs.S3FileSystem, path: str, ids: list[str], texts: list[str], group_rows: int) -> None:
    with fs.open(path, "wb") as stream:
        pq.write_table(pa.table({"doc": ids, "body": texts}), stream, row_group_size=group_rows)


def redis_values(client: redis.Redis) -> str:
    """Every key and value Redis holds now, as one text (lists, hashes, sets, streams included)."""
    found: list[Any] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        readers = {"string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1),
                   "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1),
                   "stream": lambda k: client.xrange(k)}  # fmt: skip
        found.append((key, readers[kind](key) if kind in readers else None))
    return repr(found)


def test_a_parquet_dataset_in_the_store_comes_back_exactly_once_and_redis_never_holds_its_texts(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    banking: LabelledTexts,
    s3_server: S3Server,
    bucket: str,
    store_env: dict[str, str],
) -> None:
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint_url, skip_instance_cache=True)
    texts = [f"{text} (#{index})" for index, text in enumerate(banking.texts * 2)][:3000]  # each text unique
    ids = [f"doc-{index:05d}" for index in range(len(texts))]
    _write_parquet(fs, f"{bucket}/tenants/default/corpus/part-0.parquet", ids[:1700], texts[:1700], 250)
    _write_parquet(fs, f"{bucket}/tenants/default/corpus/part-1.parquet", ids[1700:], texts[1700:], 250)
    start_worker(concurrency=2, env=store_env)

    job = client.submit_bulk(
        f"{bucket}/tenants/default/corpus/", model="tiny", out=f"{bucket}/out/run-1/", chunk_size=100,
        text_field="body", id_field="doc",
    )  # fmt: skip
    seen = []
    while not (status := client.status(job.id)).finished:
        seen.append(redis_values(redis_client))  # during the job: bookkeeping only
    seen.append(redis_values(redis_client))
    assert status.state == "succeeded", status.failures
    assert (status.total_texts, status.total_chunks, status.done_texts) == (
        3000,
        36,
        3000,
    )  # row groups of 250 cut at 100: 100, 100, 50
    held = "\n".join(seen)
    assert not any(text in held for text in texts[::7]), "an input text is in Redis"
    assert '"label"' not in held and "'label'" not in held, "a result row is in Redis"

    rows = list(client.results(job.id))
    assert [row["id"] for row in rows] == ids  # every id once, in input order (file order, then row order)
    assert {row["label"] for row in rows} <= {"problem", "question"}
    table = pq.read_table(f"{bucket}/out/run-1/".removeprefix("s3://"), filesystem=fs)  # one dataset, chunk order
    assert table.column("id").to_pylist() == ids and table.column("position").to_pylist() == list(range(3000))
    manifest = json.loads(fs.cat_file(f"{bucket}/out/run-1/{MANIFEST_FILE}"))
    assert len(manifest["parts"]) == 36 and manifest["rows"] == 3000
    assert manifest["details"]["model_version"] == status.model_version
    assert len(fs.ls(f"{bucket}/out/run-1/")) == 37  # the parts and the manifest: no scratch, no second part


def test_a_small_job_submitted_behind_a_large_one_finishes_first(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    banking: LabelledTexts,
    store_env: dict[str, str],
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": text}) + "\n" for text in banking.texts * 10))
    start_worker(concurrency=1, env=store_env)
    large = client.submit_bulk(corpus, model="tiny", chunk_size=50)  # 15,360 texts: 308 chunks, a window at a time
    small = client.submit_bulk(banking.texts[:40], model="tiny", chunk_size=20)
    assert small.wait(WAIT_S).state == "succeeded"
    assert client.status(large.id).state == "running"  # the large job's chunks did not all go before it
    assert client.cancel(large.id).state == "cancelled"


def test_a_data_store_outage_holds_a_job_up_and_it_finishes_exactly_once_without_a_manual_step(
    start_worker: Callable[..., WorkerProcess],
    client: LeptonClient,
    banking: LabelledTexts,
    s3_server: S3Server,
    bucket: str,
    store_env: dict[str, str],
) -> None:
    link = StoreLink(s3_server.port).up()  # the store as the workers see it: cut for a while, then back
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint_url, skip_instance_cache=True)
    texts = (banking.texts * 3)[:5000]
    ids = [f"q{index}" for index in range(len(texts))]
    _write_parquet(fs, f"{bucket}/tenants/default/queries.parquet", ids, texts, 100)
    start_worker(concurrency=2, env={**store_env, "LEPTON_S3_ENDPOINT_URL": link.endpoint_url})
    job = client.submit_bulk(
        f"{bucket}/tenants/default/queries.parquet", model="tiny", chunk_size=100, text_field="body", id_field="doc"
    )
    while client.status(job.id).done_chunks < 5:
        time.sleep(0.05)
    link.down()
    outage_started = time.monotonic()
    while time.monotonic() - outage_started < OUTAGE_S:
        assert client.status(job.id).state == "running"  # held up, not failed
        time.sleep(0.5)
    link.up()
    status = job.wait(WAIT_S)
    assert status.state == "succeeded" and status.failed_chunks == 0  # and no `lepton jobs retry` was needed
    assert [row["id"] for row in client.results(job.id)] == ids
    parts = [path for path in fs.ls(status.output or "") if path.endswith(".parquet")]
    assert len(parts) == status.total_chunks == 50  # no second part of any chunk


@pytest.mark.parametrize(("weights", "alpha_share"), [({}, 0.5), ({"alpha": 3.0}, 0.75)])
def test_tenants_running_large_jobs_share_the_workers_by_weight(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    banking: LabelledTexts,
    weights: dict[str, float],
    alpha_share: float,
) -> None:
    """Over a stretch of time, each tenant's job gets chunks done in proportion to its weight (windows of 4 x weight
    in one FIFO queue)."""
    start_worker(concurrency=1)
    with LeptonClient(queue_settings.model_copy(update={"tenant_weights": weights})) as client:
        jobs = {
            tenant: client.submit_bulk(banking.texts * 50, model="tiny", chunk_size=10, tenant=tenant)  # 9,600 chunks
            for tenant in ("alpha", "beta")
        }
        while min(client.status(job.id).done_chunks for job in jobs.values()) < 5:
            time.sleep(0.05)  # both under way
        before = {tenant: client.status(job.id).done_chunks for tenant, job in jobs.items()}
        time.sleep(FAIRNESS_STRETCH_S)  # the stretch measured, not a wait for an event
        after = {tenant: client.status(job.id).done_chunks for tenant, job in jobs.items()}
        for job in jobs.values():
            client.cancel(job.id)
    done = {tenant: after[tenant] - before[tenant] for tenant in jobs}
    assert sum(done.values()) > 50 and all(after[t] < 9600 for t in jobs), (done, "both ran all the stretch")
    assert done["alpha"] / sum(done.values()) == pytest.approx(alpha_share, abs=0.1), done
