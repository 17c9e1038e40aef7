"""Load and soak: mixed traffic through a local Redis and a real worker for a fixed time, checked for loss.

Bulk jobs run back to back while ``--clients`` threads send one-text requests (the interactive lane) as fast
as they are answered. Every bulk job's output is checked (each input exactly once, in order); the report
gives throughput, one-text latency percentiles, worker memory at the start and the end (the worker runs
with a memory guard: a pool process over ``--max-memory-mb`` is replaced after its task), and the counts
of lost and duplicated results, which must be 0. Writes a markdown report (default bench/results/soak.md).

    python bench/soak.py [--minutes 30] [--clients 32] [--model intents@production] [--registry models]

Exit status 1 when anything was lost, duplicated or failed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

import psutil  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.shared_data import real_texts  # noqa: E402
from lepton_runtime.machine import free_port  # noqa: E402
from lepton_runtime.registry import ModelRegistry  # noqa: E402
from lepton_runtime.settings import LeptonSettings  # noqa: E402
from lepton_runtime.text_files import jsonl_rows  # noqa: E402
from producer import LeptonClient  # noqa: E402
from workers.embedded import LocalRedis  # noqa: E402
from workers.processes import WorkerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_texts(source: str | None) -> list[str]:
    """The shared SST-2 and BANKING77 texts, or those of a JSONL file (the short soak of `make test` passes the
    BANKING77 split that ships in the repository)."""
    if source is None:
        return real_texts(seed=11)
    texts = [str(row["text"]) for _, row in jsonl_rows(Path(source))]
    random.Random(11).shuffle(texts)
    return texts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def pool_rss_mb(worker: WorkerProcess) -> float:
    return sum(child.memory_info().rss for child in psutil.Process(worker.process.pid).children()) / 2**20


def guarded(target: Any, tally: Tally) -> Any:
    """``target``, with any exception that would end its thread counted as a failure."""

    def run(*arguments: Any) -> None:
        try:
            target(*arguments)
        except Exception as error:
            tally.failed(f"{target.__name__} died: {type(error).__name__}: {error}")

    return run


class Tally:
    """What the traffic threads saw; guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.bulk_jobs = self.bulk_texts = self.lost = self.duplicated = self.failures = 0
        self.errors: list[str] = []

    def failed(self, what: str) -> None:
        with self.lock:
            self.failures += 1
            if len(self.errors) < 10:
                self.errors.append(what)


def one_text_client(
    settings: LeptonSettings, model: str, texts: list[str], think_s: float, stop: threading.Event, tally: Tally
) -> None:
    chooser = random.Random(threading.get_ident())
    with LeptonClient(settings) as client:
        while not stop.wait(think_s):  # a client pauses between requests, as a service's users do
            started = time.perf_counter()
            try:
                (answer,) = client.classify([chooser.choice(texts)], model=model).wait(60)
                ok = hasattr(answer, "label")
            except Exception as error:  # counted and reported, never hidden
                tally.failed(f"classify: {type(error).__name__}: {error}")
                continue
            with tally.lock:
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            if not ok:
                tally.failed(f"classify answered {answer}")


def bulk_submitter(
    settings: LeptonSettings, model: str, texts: list[str], size: int, stop: threading.Event, tally: Tally
) -> None:
    chooser = random.Random(5)
    with LeptonClient(settings) as client:
        while not stop.is_set():
            batch = [chooser.choice(texts) for _ in range(size)]
            try:
                status = client.submit_bulk(batch, model=model).wait(1800)
                ids = [row["id"] for row in client.results(status.id)]
            except Exception as error:
                tally.failed(f"bulk: {type(error).__name__}: {error}")
                continue
            expected = [str(i) for i in range(size)]
            with tally.lock:
                tally.bulk_jobs += 1
                tally.bulk_texts += size
                tally.lost += len(set(expected) - set(ids))
                tally.duplicated += len(ids) - len(set(ids))
            if status.state != "succeeded":
                tally.failed(f"bulk job {status.id} {status.state}: {status.failures[:3]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the traffic runs")
    parser.add_argument("--clients", type=int, default=32, help="concurrent one-text clients")
    parser.add_argument("--bulk-texts", type=int, default=5000, help="texts per bulk job (jobs run back to back)")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=500.0,
        help="pause of each one-text client between requests",
    )
    parser.add_argument("--model", default="intents@production", help="published reference (make demo)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root (LEPTON_MODEL_DIR)")
    parser.add_argument("--max-memory-mb", type=int, default=1024, help="the worker's memory guard per process")
    parser.add_argument("--texts", default=None, help="JSONL file of texts (default: shared/datasets sst2 + banking77)")
    parser.add_argument("--report", default=str(ROOT / "bench" / "results" / "soak.md"), help="markdown report")
    args = parser.parse_args()

    registry = ModelRegistry(args.registry)
    version = registry.resolve(args.model)  # fails with how to fix when nothing is published
    texts = load_texts(args.texts)
    scratch = Path(tempfile.mkdtemp(prefix="lepton-soak-"))
    server = LocalRedis(free_port(), scratch / "redis")
    url = server.start()
    env = {**os.environ, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(registry.root)}
    settings = LeptonSettings(redis_url=SecretStr(url), model_dir=registry.root)
    worker = WorkerProcess(env, scratch / "worker.log", processes=max(1, os.cpu_count() or 1),
                           arguments=["--threads", "1", "--warm", version.reference,
                                      "--max-memory-mb", str(args.max_memory_mb)], cwd=ROOT)  # fmt: skip
    tally, stop = Tally(), threading.Event()
    try:
        worker.wait_ready()
        rss_start_mb = pool_rss_mb(worker)
        threads = [
            threading.Thread(
                target=bulk_submitter,
                args=(settings, version.reference, texts, args.bulk_texts, stop, tally),
                daemon=True,
            )
        ]
        threads += [
            threading.Thread(target=guarded(one_text_client, tally), daemon=True,
                             args=(settings, version.reference, texts, args.think_ms / 1000, stop, tally))
            for _ in range(args.clients)
        ]  # fmt: skip
        started = time.monotonic()
        for thread in threads:
            thread.start()
        duration_s = args.minutes * 60
        with tqdm(total=round(duration_s), unit="s", desc="soak", file=sys.stderr) as bar:
            while (elapsed := time.monotonic() - started) < duration_s:
                stop.wait(min(1.0, duration_s - elapsed))  # the clock, not a synchronisation
                bar.n = round(time.monotonic() - started)
                bar.set_postfix(requests=len(tally.latencies_ms), bulk_jobs=tally.bulk_jobs, failures=tally.failures)
        stop.set()
        for thread in threads:
            thread.join(timeout=1800)
        elapsed_s = time.monotonic() - started
        rss_end_mb = pool_rss_mb(worker)
        alive = worker.process.poll() is None
    finally:
        worker.stop()
        server.stop()

    requests = len(tally.latencies_ms)
    ok = alive and tally.lost == tally.duplicated == tally.failures == 0 and tally.bulk_jobs > 0
    ok = ok and (requests > 0 or args.clients == 0)
    lines = [
        f"# Soak: {args.minutes:g} minutes of mixed traffic",
        "",
        f"`python bench/soak.py --minutes {args.minutes:g} --clients {args.clients} --think-ms {args.think_ms:g}`:"
        f" {version.reference},"
        f" a local Redis (append-only) and one worker ({max(1, os.cpu_count() or 1)} processes, memory guard"
        f" {args.max_memory_mb} MB), {psutil.cpu_count()} cores; bulk jobs of {args.bulk_texts:,} texts back to back"
        f" and {args.clients} one-text clients, each pausing {args.think_ms:g} ms between requests.",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| wall time | {elapsed_s:,.0f} s |",
        f"| bulk jobs finished | {tally.bulk_jobs} |",
        f"| bulk throughput | {tally.bulk_texts / elapsed_s:,.0f} texts/s |",
        f"| one-text requests answered | {requests:,} ({requests / elapsed_s:,.1f}/s) |",
        f"| one-text latency p50 / p99 | {percentile(tally.latencies_ms, 0.5):,.1f} / "
        f"{percentile(tally.latencies_ms, 0.99):,.1f} ms |",
        f"| one-text latency mean | {statistics.fmean(tally.latencies_ms) if requests else float('nan'):,.1f} ms |",
        f"| worker pool RSS, start -> end | {rss_start_mb:,.0f} -> {rss_end_mb:,.0f} MB |",
        f"| lost results | **{tally.lost}** |",
        f"| duplicated results | **{tally.duplicated}** |",
        f"| failed requests or jobs | {tally.failures} |",
        f"| worker alive at the end | {'yes' if alive else 'NO'} |",
        "",
        *(f"- failure: {error}" for error in tally.errors),
    ]
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
