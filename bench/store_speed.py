"""The price of the data store path: one Parquet file of real texts classified by the in-process Engine, and the same
file as a bulk job through the data store (workers read their splits and write Parquet parts), in this one run.

The model is MiniLM int8 (`make demo` publishes intents@production); texts are SST-2 and BANKING77 dev sentences,
repeated. The baseline reads the file and runs ``Engine.classify`` over every text with all cores' threads,
10,000 texts a call (the rows come back in input order); the job runs on a worker of one pool process per core,
1 thread each, and counts from submit to the last part committed. Medians of ``--repeats`` runs each; prints the ratio.

    python bench/store_speed.py [--rows 200000] [--model intents@production] [--chunk-size 2000] [--repeats 1]
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
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bench.shared_data import real_texts, repeated  # noqa: E402
from lepton_runtime.constants import DEFAULT_MAX_ITEMS  # noqa: E402
from lepton_runtime.inference import Engine  # noqa: E402
from lepton_runtime.machine import available_cores, free_port  # noqa: E402
from lepton_runtime.registry import ModelRegistry  # noqa: E402
from lepton_runtime.settings import LeptonSettings  # noqa: E402
from producer import LeptonClient  # noqa: E402
from workers.embedded import LocalRedis  # noqa: E402
from workers.processes import WorkerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the Parquet file")
    parser.add_argument("--model", default="intents@production", help="published reference (make demo)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root (LEPTON_MODEL_DIR)")
    parser.add_argument("--chunk-size", type=int, default=2000, help="rows per chunk and per row group")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; the median is reported")
    parser.add_argument("--out", default=str(RESULTS / "store_speed.json"), help="where the figures go (JSON)")
    args = parser.parse_args()

    registry = ModelRegistry(args.registry)
    version = registry.resolve(args.model)
    cores = available_cores()
    texts = repeated(real_texts(seed=7), args.rows)
    with tempfile.TemporaryDirectory(prefix="lepton-store-speed-") as scratch_name:
        scratch = Path(scratch_name)
        store = scratch / "data-store"
        corpus = store / "tenants" / "default" / "corpus.parquet"
        corpus.parent.mkdir(parents=True)
        table = pa.table({"id": [f"r{row}" for row in range(args.rows)], "text": texts})
        pq.write_table(table, corpus, row_group_size=args.chunk_size, compression="zstd")

        engine = Engine(version.path, intra_op_threads=cores)
        engine.classify(texts[:256])  # warm
        in_process = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            read = pq.read_table(corpus, columns=["text"]).column("text").to_pylist()
            labels = [  # the engine takes DEFAULT_MAX_ITEMS texts a call
                prediction.label
                for start in range(0, len(read), DEFAULT_MAX_ITEMS)
                for prediction in engine.classify(read[start : start + DEFAULT_MAX_ITEMS])
            ]
            in_process.append(time.perf_counter() - started)
            assert len(labels) == args.rows
        baseline = args.rows / statistics.median(in_process)
        print(f"in process ({engine.provenance.variant}, 1 x {cores} threads): {baseline:,.0f} texts/s")
        del engine

        redis_server = LocalRedis(free_port(), scratch / "redis")
        url = redis_server.start()
        env = {**os.environ, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(registry.root),
               "LEPTON_DATA_STORE": str(store)}  # fmt: skip
        settings = LeptonSettings(redis_url=SecretStr(url), model_dir=registry.root, data_store=str(store))
        arguments = ["--threads", "1", "--warm", version.reference]
        worker = WorkerProcess(
            env, scratch / "worker.log", processes=cores, arguments=arguments, name_prefix="speed", cwd=ROOT
        )
        through_store = []
        try:
            worker.wait_ready()
            with LeptonClient(settings) as client:
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    job = client.submit_bulk(str(corpus), model=version.reference, chunk_size=args.chunk_size)
                    status = job.wait(3600)
                    client.bulk_data.manifest(client.jobs, job.id)  # committed
                    through_store.append(time.perf_counter() - started)
                    assert status.state == "succeeded" and status.done_texts == args.rows, status
        finally:
            worker.stop()
            redis_server.stop()
    rate = args.rows / statistics.median(through_store)
    ratio = rate / baseline
    print(
        f"through the data store ({cores} x 1 thread, chunks of {args.chunk_size}): {rate:,.0f} texts/s = {ratio:.2f}x"
    )
    report = {
        "rows": args.rows, "model": version.reference, "cores": cores, "chunk_size": args.chunk_size,
        "in_process_texts_per_s": round(baseline, 1),
        "through_store_texts_per_s": round(rate, 1), "ratio": round(ratio, 3), "repeats": args.repeats,
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
