"""A corpus embedded through the queue as a user runs it: ``lepton submit corpus.jsonl --model M --out vectors.npy``
then ``lepton jobs results JOB --out vectors.parquet``, with a real Redis and a real worker; checks that every
row is there once and in input order, and samples each command's resident memory (the producer must never hold
the job's vectors: 100,000 x 384 float32 alone are 154 MB, as Python floats about 1 GB).

    python bench/bulk_embeddings.py [--texts 100000] [--model minilm@production] [--rss-limit-mb 400]

Writes bench/results/bulk_embeddings.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

from bench.shared_data import real_texts  # noqa: E402
from lepton_runtime.machine import available_cores, free_port  # noqa: E402
from lepton_runtime.registry import ModelRegistry  # noqa: E402
from workers.embedded import LocalRedis  # noqa: E402
from workers.processes import WorkerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LEPTON = str(Path(sys.executable).with_name("lepton"))


def peak_rss_mb(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``command``; return its peak resident memory in MB (sampled every 50 ms), wall seconds and stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watched = psutil.Process(process.pid)
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                peak = max(peak, watched.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                return
            stop.wait(0.05)  # the sampling period, not a synchronisation

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
    return peak, time.perf_counter() - started, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=100_000, help="texts in the corpus")
    parser.add_argument("--model", default=None, help="a published embedding model (default: export one here)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root of --model")
    parser.add_argument("--rss-limit-mb", type=float, default=400.0, help="the producer's stated memory bound")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="lepton-bulk-embeddings-"))
    if args.model:
        registry, reference = ModelRegistry(args.registry), args.model
    else:
        from export.publish import export_checkpoint
        from lepton_runtime.training import default_base_model

        registry = ModelRegistry(scratch / "models")
        print("exporting all-MiniLM-L6-v2 (fp32) ...", file=sys.stderr)
        reference = export_checkpoint(default_base_model(), registry, "minilm", task="embedding").reference
    corpus = real_texts(seed=3)
    corpus_file = scratch / "corpus.jsonl"
    with corpus_file.open("w", encoding="utf-8") as handle:
        for index in range(args.texts):
            handle.write(json.dumps({"id": f"doc-{index}", "text": corpus[index % len(corpus)]}) + "\n")

    server = LocalRedis(free_port(), scratch / "redis")
    url = server.start()
    env = {**os.environ, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(registry.root)}
    worker = WorkerProcess(
        env, scratch / "worker.log", processes=available_cores(), arguments=["--threads", "1", "--warm", reference],
        name_prefix="bench", cwd=ROOT,
    )  # fmt: skip
    try:
        worker.wait_ready()
        npy = scratch / "vectors.npy"
        submit_peak, submit_s, output = peak_rss_mb(
            [LEPTON, "submit", str(corpus_file), "--model", reference, "--out", str(npy)], env
        )
        job_id = output.splitlines()[0].strip()  # `lepton submit` prints the job id first on stdout
        parquet = scratch / "vectors.parquet"
        results_peak, results_s, _ = peak_rss_mb([LEPTON, "jobs", "results", job_id, "--out", str(parquet)], env)
    finally:
        worker.stop()
        server.stop()

    import pyarrow.parquet as pq

    array = np.load(npy, mmap_mode="r")
    ids = [json.loads(line)["id"] for line in (scratch / "vectors.ids.jsonl").open()]
    table = pq.read_table(parquet, columns=["id"])
    expected = [f"doc-{index}" for index in range(args.texts)]
    checks = {
        ".npy rows": array.shape[0] == args.texts and not np.isnan(array).any(),
        ".npy ids in input order": ids == expected,
        ".parquet ids in input order": table.column("id").to_pylist() == expected,
        "vectors unit length": bool(np.allclose(np.linalg.norm(array[:1000], axis=1), 1.0, atol=1e-4)),
    }
    lines = [
        f"# bench/bulk_embeddings.py\n\n{args.texts:,} real texts (SST-2 + BANKING77 dev, repeated), model {reference},"
        f" one worker of {available_cores()} x 1 thread.\n",
        "| command | wall | texts/s | producer peak RSS |",
        "| --- | ---: | ---: | ---: |",
        f"| `lepton submit corpus.jsonl --out vectors.npy` (submit, wait, write) | {submit_s:.0f} s |"
        f" {args.texts / submit_s:.0f} | {submit_peak:.0f} MB |",
        f"| `lepton jobs results JOB --out vectors.parquet` | {results_s:.0f} s | - | {results_peak:.0f} MB |",
        "",
        f"Stated bound: the producer stays under {args.rss_limit_mb:.0f} MB"
        f" (the vectors alone are {args.texts * array.shape[1] * 4 / 2**20:.0f} MB as float32):"
        f" **{'met' if max(submit_peak, results_peak) <= args.rss_limit_mb else 'MISSED'}**.",
        "",
        *[f"- {name}: {'yes' if passed else 'NO'}" for name, passed in checks.items()],
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bulk_embeddings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(checks.values()) and max(submit_peak, results_peak) <= args.rss_limit_mb else 1


if __name__ == "__main__":
    sys.exit(main())
