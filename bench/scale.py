"""Bulk jobs of any size: a large Parquet dataset through the data store, with Redis holding only bookkeeping.

Real texts (SST-2 and BANKING77 dev sentences, repeated, each row with a unique id) are written as a Parquet
dataset in the data store (a folder); ``lepton submit`` runs in a
process of its own (its peak RSS and its wall time are the producer's); a worker with ``--processes`` pool processes
runs a tiny BERT (2 layers, 32 wide, random weights: the coordination is measured, not the model). Sampled all
along: Redis ``used_memory`` over its level before the job. At the end the output is read through its manifest and
every id checked, once, in input order. A second job of ``--small-rows`` rows is submitted while the large one
runs: how long it takes says what the window does for it. Writes the figures to bench/results/scale.json, which
the capacity model (bench/results/scale.md) quotes.

    python bench/scale.py [--rows 10000000] [--processes 2] [--chunk-size 5000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's `queue`: keep this folder off the path, the repository on it
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import redis  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.shared_data import real_texts  # noqa: E402
from lepton_runtime.inference import Engine  # noqa: E402
from lepton_runtime.jobs.bulk_data import BulkData  # noqa: E402
from lepton_runtime.jobs.keys import JobKeys  # noqa: E402
from lepton_runtime.machine import free_port  # noqa: E402
from lepton_runtime.registry import ModelRegistry  # noqa: E402
from lepton_runtime.settings import LeptonSettings  # noqa: E402
from producer import LeptonClient  # noqa: E402
from workers.embedded import LocalRedis  # noqa: E402
from workers.processes import WorkerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SAMPLE_INTERVAL_S = 0.2
# With --task embedding: one output vector in this many is compared with the engine's in process.
VECTOR_SAMPLE_EVERY = 1000
# `lepton submit` as a user runs it, then its own peak RSS (KiB) on the last line of stderr: VmHWM, the high-water
# mark of this program's memory (ru_maxrss would count the parent's, which a fork copies and exec keeps)
SUBMIT_AND_REPORT_RSS = """
import re, sys
from lepton_runtime.cli import main
sys.argv = ["lepton", *sys.argv[1:]]
try:
    main()
finally:
    peak = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
    print("peak rss KiB", peak, file=sys.stderr)
"""


def tiny_model(registry: ModelRegistry, scratch: Path) -> str:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer, random weights, exported fp32 and published."""
    from export.publish import export_checkpoint
    from export.tiny_models import tiny_classifier

    checkpoint = tiny_classifier(scratch / "tiny", ["negative", "positive"], seed=0)
    return export_checkpoint(checkpoint, registry, "tiny", promote="production").reference


def tiny_encoder(registry: ModelRegistry, scratch: Path) -> str:
    """A 2-layer, 32-wide BERT as a sentence-transformers model, exported as an embedding model and published."""
    from export.publish import export_checkpoint
    from export.tiny_models import tiny_sentence_encoder

    directory = tiny_sentence_encoder(scratch / "tiny-encoder", seed=1)
    return export_checkpoint(directory, registry, "tiny-embed", task="embedding", promote="production").reference


def write_dataset(folder: Path, rows: int, row_group_rows: int, files: int) -> None:
    """``rows`` real texts with ids ``r<row>`` as ``files`` Parquet files, in row groups of ``row_group_rows``."""
    texts = real_texts(seed=7)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // files)
    with tqdm(total=rows, desc="dataset", unit="rows", unit_scale=True) as bar:
        for index in range(files):
            first, last = index * per_file, min(rows, (index + 1) * per_file)
            schema = pa.schema([("id", pa.string()), ("text", pa.string())])
            with pq.ParquetWriter(folder / f"part-{index:03d}.parquet", schema, compression="zstd") as writer:
                for start in range(first, last, row_group_rows):
                    stop = min(last, start + row_group_rows)
                    ids = [f"r{row}" for row in range(start, stop)]
                    body = [texts[row % len(texts)] for row in range(start, stop)]
                    writer.write_table(pa.table({"id": ids, "text": body}, schema=schema))
                    bar.update(stop - start)


class MemorySampler(threading.Thread):
    """Redis ``used_memory`` every SAMPLE_INTERVAL_S, from a baseline: its peak and its trace."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.baseline = int(client.info("memory")["used_memory"])
        self.peak = self.baseline
        self.trace: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(SAMPLE_INTERVAL_S):
            used = int(self.client.info("memory")["used_memory"])
            self.peak = max(self.peak, used)
            self.trace.append((time.monotonic() - started, used - self.baseline))


def commands_total(client: redis.Redis) -> int:
    return sum(int(stats["calls"]) for stats in client.info("commandstats").values())


def cpu_seconds(client: redis.Redis) -> float:
    """CPU time the Redis server has used (user + system), main thread and all."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def check_output(client: LeptonClient, job_id: str, rows: int, engine: Any = None) -> tuple[int, float | None]:
    """Every id once, in input order, read through the manifest (each part's sha256 checked); with an embedding
    ``engine``, the vectors of one row in 1,000 against the engine's in process. Returns the rows and the largest
    difference of a vector component (None without an engine)."""
    data: BulkData = client.bulk_data
    manifest = data.manifest(client.jobs, job_id)
    status = client.status(job_id)
    fs, path = client.data.filesystem(status.output or "")
    from lepton_runtime.jobs.parts import JobOutput

    output = JobOutput(fs, path)
    texts = real_texts(seed=7)
    expected, largest = 0, None
    for part in tqdm(manifest.parts, desc="check", unit="parts"):
        table = output.read_part(part)
        ids = table.column("id").to_pylist()
        if ids != [f"r{row}" for row in range(expected, expected + len(ids))]:
            raise AssertionError(f"part {part.name}: ids out of order or missing after row {expected}")
        if engine is not None:
            sample = list(range(0, len(ids), VECTOR_SAMPLE_EVERY))
            vectors = table.column("embedding").take(sample).to_pylist()
            wanted = engine.embed([texts[(expected + i) % len(texts)] for i in sample])
            difference = float(abs(np.asarray(vectors, np.float32) - wanted).max())
            largest = difference if largest is None else max(largest, difference)
        expected += len(ids)
    if expected != rows:
        raise AssertionError(f"the output has {expected} rows, the input {rows}")
    return expected, largest


def fairness(settings: LeptonSettings, corpus: Path, model: str, stretch_s: float, chunk_size: int) -> dict[str, Any]:
    """Two tenants of equal weight each run a job over the whole corpus: the chunks each gets done over
    ``stretch_s`` once both are under way (both jobs are cancelled after)."""
    with LeptonClient(settings) as client:
        jobs = {
            tenant: client.submit_bulk(str(corpus), model=model, chunk_size=chunk_size, tenant=tenant)
            for tenant in ("alpha", "beta")
        }
        while min(client.status(job.id).done_chunks for job in jobs.values()) < 3:
            time.sleep(0.2)
        before = {tenant: client.status(job.id).done_chunks for tenant, job in jobs.items()}
        time.sleep(stretch_s)  # the stretch measured
        after = {tenant: client.status(job.id) for tenant, job in jobs.items()}
        for job in jobs.values():
            client.cancel(job.id)
    done = {tenant: after[tenant].done_chunks - before[tenant] for tenant in jobs}
    if any(status.finished for status in after.values()):
        raise AssertionError("a job finished inside the stretch: give more --rows")
    total = sum(done.values())
    return {"stretch_s": stretch_s, "chunks_done": done, "shares": {t: round(n / total, 3) for t, n in done.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the large dataset")
    parser.add_argument("--files", type=int, default=10, help="Parquet files it is written as")
    parser.add_argument("--processes", type=int, default=2, help="worker pool processes")
    parser.add_argument("--chunk-size", type=int, default=5000, help="rows per chunk (and per row group)")
    parser.add_argument("--small-rows", type=int, default=1000, help="rows of the job submitted behind the large one")
    parser.add_argument("--task", choices=["classification", "embedding"], default="classification", help="the model")
    parser.add_argument("--out", default=str(RESULTS / "scale.json"), help="where the figures go (JSON)")
    parser.add_argument(
        "--fairness-s", type=float, default=0, help="instead: two tenants' jobs over the dataset, shares over this long"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lepton-scale-") as scratch_name:
        scratch = Path(scratch_name)
        registry = ModelRegistry(scratch / "models")
        model = tiny_encoder(registry, scratch) if args.task == "embedding" else tiny_model(registry, scratch)
        store = scratch / "data-store"
        corpus = store / "tenants" / "default" / "corpus"
        write_dataset(corpus, args.rows, args.chunk_size, args.files)
        redis_server = LocalRedis(free_port(), scratch / "redis", appendonly=False)
        url = redis_server.start()
        env = {
            **os.environ, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(registry.root),
            "LEPTON_DATA_STORE": str(store), "LEPTON_CHUNK_SIZE": str(args.chunk_size),
        }  # fmt: skip
        settings = LeptonSettings(redis_url=SecretStr(url), model_dir=registry.root, data_store=str(store))
        worker = WorkerProcess(env, scratch / "worker.log", processes=args.processes, arguments=["--threads", "1"],
                               name_prefix="scale", cwd=ROOT)  # fmt: skip
        try:
            worker.wait_ready()
            if args.fairness_s:
                registry.share(model.split("@")[0], True)  # both tenants run the one model
                shares = fairness(settings, corpus, model, args.fairness_s, args.chunk_size)
                print(json.dumps(shares, indent=2))
                Path(args.out).write_text(json.dumps({"rows": args.rows, **shares}, indent=2) + "\n")
                return
            probe = redis.Redis.from_url(url, decode_responses=True)
            sampler = MemorySampler(probe)
            sampler.start()
            commands_before, cpu_before = commands_total(probe), cpu_seconds(probe)
            started = time.perf_counter()
            submitted = subprocess.run(
                [sys.executable, "-c", SUBMIT_AND_REPORT_RSS, "submit", str(corpus), "--model", model, "--no-wait"],
                env=env, capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
            submit_s = time.perf_counter() - started
            producer_peak_mb = int(submitted.stderr.strip().splitlines()[-1].split()[-1]) / 1024
            job_id = submitted.stdout.split()[0]
            with LeptonClient(settings) as client:
                after_submit = int(probe.info("memory")["used_memory"]) - sampler.baseline
                while client.status(job_id).done_chunks < 3:
                    time.sleep(0.5)  # the large job is under way: now the small one
                small_started = time.perf_counter()
                small = client.submit_bulk(
                    [f"small job text {index}" for index in range(args.small_rows)], model=model, chunk_size=500
                )
                small_status = small.wait(600)
                small_s = time.perf_counter() - small_started
                with tqdm(total=args.rows, desc="large job", unit="texts", unit_scale=True) as bar:
                    status = client.wait(job_id, None, on_progress=lambda s: bar.update(s.done_texts - bar.n))
                sampler.stopped.set()
                sampler.join()
                commands, redis_cpu_s = commands_total(probe) - commands_before, cpu_seconds(probe) - cpu_before
                engine = Engine(registry.resolve(model).path, intra_op_threads=1) if args.task == "embedding" else None
                rows_out, vector_difference = check_output(client, job_id, args.rows, engine)
                keys = JobKeys(job_id)
                job_bytes = sum(int(probe.memory_usage(key) or 0) for key in keys.all())
        finally:
            worker.stop()
            redis_server.stop()
        elapsed_s = (status.finished_at or 0) - (status.started_at or 0)
        report = {
            "task": args.task, "rows": args.rows, "chunks": status.total_chunks, "chunk_size": args.chunk_size,
            "processes": args.processes, "state": status.state, "rows_checked": rows_out,
            "submit_s": round(submit_s, 2), "producer_peak_rss_mb": round(producer_peak_mb, 1),
            "redis_peak_over_baseline_mb": round((sampler.peak - sampler.baseline) / 1e6, 2),
            "redis_after_submit_mb": round(after_submit / 1e6, 2), "job_keys_bytes_at_end": job_bytes,
            "bytes_per_chunk": round(job_bytes / status.total_chunks, 1),
            "redis_commands": commands, "redis_commands_per_chunk": round(commands / status.total_chunks, 1),
            "redis_cpu_s": round(redis_cpu_s, 2),
            "redis_cpu_ms_per_chunk": round(1000 * redis_cpu_s / status.total_chunks, 3),
            "texts_per_s": round(args.rows / elapsed_s, 1), "run_s": round(elapsed_s, 1),
            "largest_vector_difference_vs_engine": vector_difference,
            "small_job_rows": args.small_rows, "small_job_state": small_status.state, "small_job_s": round(small_s, 2),
        }  # fmt: skip
    print(json.dumps(report, indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures -> {args.out}; the capacity model (bench/results/scale.md) quotes them")


if __name__ == "__main__":
    main()
