"""What the queue costs: the same texts and model in process and as a bulk job through Redis and a real
worker, measured in this one run; and the round trip of a one-text ``lepton.classify``.

Real texts (SST-2 and BANKING77 dev sets, shuffled), the fine-tuned demo model (`make demo` publishes
it), medians of repeated passes. Bulk end to end = submit (texts into Redis, chunks enqueued) until
every output row is read back. Writes bench/results/queue.{md,png}.

    python bench/queue.py [--model intents@production] [--texts 6000] [--repeats 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named queue.py: keep its folder off the path, or `import queue` (used by the
# standard library and celery) would find it instead of the real module.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from pydantic import SecretStr  # noqa: E402

from bench.shared_data import real_texts, repeated  # noqa: E402
from lepton_runtime.inference import Engine  # noqa: E402
from lepton_runtime.machine import available_cores, free_port  # noqa: E402
from lepton_runtime.registry import ModelRegistry  # noqa: E402
from lepton_runtime.settings import LeptonSettings  # noqa: E402
from producer import LeptonClient  # noqa: E402
from workers.embedded import LocalRedis  # noqa: E402
from workers.processes import WorkerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def load_texts(count: int) -> list[str]:
    return repeated(real_texts(seed=7), count)


def median_rate(run: object, count: int, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return count / statistics.median(timings)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="intents@production", help="published reference (make demo)")
    parser.add_argument("--registry", default="models", help="registry root (LEPTON_MODEL_DIR)")
    parser.add_argument("--texts", type=int, default=6000, help="real texts per pass (at least 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the median is reported")
    parser.add_argument("--chunk-sizes", default="128,256,512,1024", help="bulk chunk sizes to compare")
    parser.add_argument("--round-trips", type=int, default=300, help="sequential one-text requests")
    args = parser.parse_args()

    registry = ModelRegistry(ROOT / args.registry)
    version = registry.resolve(args.model)
    texts, count, repeats = load_texts(args.texts), args.texts, args.repeats
    cores = available_cores()
    chunk_sizes = [int(size) for size in args.chunk_sizes.split(",")]
    print(f"model {version.reference}, {count} real texts, {cores} cores, median of {repeats}")
    rows: list[tuple[str, float, str]] = []

    engine = Engine(version.path, intra_op_threads=cores)
    in_process = median_rate(lambda: engine.classify(texts), count, repeats)
    rows.append((f"Engine in process ({engine.provenance.variant}, 1 x {cores} threads)", in_process, "baseline"))
    print(f"  in process: {in_process:,.0f} texts/s")

    with tempfile.TemporaryDirectory() as scratch:
        redis_server = LocalRedis(free_port(), Path(scratch) / "redis")  # as `lepton up` runs it: append-only on
        url = redis_server.start()
        env = {**os.environ, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(registry.root)}
        client = LeptonClient(LeptonSettings(redis_url=SecretStr(url), model_dir=registry.root))
        log = Path(scratch) / "worker.log"

        def bulk(chunk_size: int) -> None:
            job = client.submit_bulk(texts, model=version.reference, chunk_size=chunk_size)
            status = job.wait(600)
            assert status.state == "succeeded", status
            assert sum(1 for _ in client.result_lines(job.id)) == count

        workers: list[WorkerProcess] = []
        one_text: dict[str, list[float]] = {}
        try:
            shapes = [(cores, 1), (1, cores)] if cores > 1 else [(1, 1)]
            best: dict[str, float] = {}
            for processes, threads in shapes:
                worker = WorkerProcess(
                    env, log, processes=processes, arguments=["--threads", str(threads), "--warm", version.reference],
                    name_prefix="bench", cwd=ROOT,
                )  # fmt: skip
                workers.append(worker)
                worker.wait_ready()
                sizes = chunk_sizes if (processes, threads) == shapes[0] else [int(max(best, key=best.__getitem__))]
                for size in sizes:
                    bulk(size)  # warm the path (first results hash, first connections)
                    rate = median_rate(lambda size=size: bulk(size), count, repeats)
                    label = f"bulk job, {processes} x {threads} threads, chunks of {size}"
                    rows.append((label, rate, f"{rate / in_process:.2f}x"))
                    print(f"  {label}: {rate:,.0f} texts/s = {rate / in_process:.2f}x")
                    if (processes, threads) == shapes[0]:
                        best[str(size)] = rate
                if (processes, threads) == shapes[0]:
                    label = f"`lepton.classify`, default worker (prefork, {processes} x {threads} thread)"
                    one_text[label] = queued_latency(client, version.reference, texts, args.round_trips)
                worker.stop()
            for threads in sorted({1, cores}):
                worker = WorkerProcess(
                    env, log, arguments=["--pool", "solo", "--threads", str(threads), "--warm", version.reference],
                    name_prefix="bench", cwd=ROOT,
                )  # fmt: skip
                workers.append(worker)
                worker.wait_ready()
                label = f"`lepton.classify`, solo-pool worker (1 x {threads} thread{'s' if threads > 1 else ''})"
                one_text[label] = queued_latency(client, version.reference, texts, args.round_trips)
                worker.stop()
        finally:
            for started in workers:
                started.stop()
            client.close()
            redis_server.stop()

    # in process last, with no worker running: each loop alone, so neither steals the other's cores
    one_text[f"Engine.classify in process (1 x {cores} threads)"] = local_latency(engine, texts, args.round_trips)
    best_size = max(best, key=best.get)  # type: ignore[arg-type]
    report(rows, one_text, in_process, best_size, count, repeats, version.reference, cores)


WARM_UP_CALLS = 20


def queued_latency(client: LeptonClient, model: str, texts: list[str], count: int) -> list[float]:
    """Milliseconds of sequential one-text `lepton.classify` round trips (after a warm-up)."""
    timings = []
    for text in texts[: count + WARM_UP_CALLS]:
        started = time.perf_counter()
        client.classify([text], model=model).wait(30)
        timings.append((time.perf_counter() - started) * 1000)
    print(f"  one text through the queue: p50 {percentile(timings[WARM_UP_CALLS:], 0.5):.2f} ms")
    return timings[WARM_UP_CALLS:]


def local_latency(engine: Engine, texts: list[str], count: int) -> list[float]:
    """Milliseconds of the same one-text calls in process."""
    timings = []
    for text in texts[: count + WARM_UP_CALLS]:
        started = time.perf_counter()
        engine.classify([text])
        timings.append((time.perf_counter() - started) * 1000)
    print(f"  one text in process: p50 {percentile(timings[WARM_UP_CALLS:], 0.5):.2f} ms")
    return timings[WARM_UP_CALLS:]


def report(
    rows: list[tuple[str, float, str]],
    one_text: dict[str, list[float]],
    in_process: float,
    best_size: str,
    count: int,
    repeats: int,
    model: str,
    cores: int,
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    best_rate = max(rate for name, rate, _ in rows if name.startswith("bulk"))
    local_label = next(label for label in one_text if "in process" in label)
    local_p50_ms = percentile(one_text[local_label], 0.5)
    lines = [
        "# Queue overhead: bulk jobs and one-text round trips through Redis and a real worker",
        "",
        f"`python bench/queue.py`: {model}, {count} real texts (SST-2 + BANKING77, shuffled), {cores} cores,"
        f" medians of {repeats}. Bulk end to end = submit until every row is read back.",
        "",
        "| path | texts/s | vs in process |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {rate:,.0f} | {note} |" for name, rate, note in rows],
        "",
        f"**Best bulk: {best_rate:,.0f} texts/s = {best_rate / in_process:.2f}x the in-process Engine**"
        f" (best chunk size {best_size}).",
        "",
        "| one text, sequential | p50 ms | p99 ms | p50 above in process |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {label} | {percentile(ms, 0.5):.2f} | {percentile(ms, 0.99):.2f} |"
            f" {percentile(ms, 0.5) - local_p50_ms:+.2f} ms |"
            for label, ms in one_text.items()
        ],
    ]
    (RESULTS / "queue.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-(len(one_text) + 5) :]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.2))
    axis.barh([name for name, _, _ in rows][::-1], [rate for _, rate, _ in rows][::-1], color="#4c72b0")
    axis.axvline(in_process, color="#c44e52", linestyle="--", label="in process")
    axis.set_xlabel("texts per second (higher is better)")
    axis.set_title(f"Bulk jobs through Redis and a worker vs in process ({model}, {cores} cores)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(RESULTS / "queue.png", dpi=110)
    print(f"wrote {RESULTS / 'queue.md'} and queue.png")


if __name__ == "__main__":
    main()
