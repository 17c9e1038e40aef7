"""Online and bulk traffic on one fleet: one-text latency beside bulk jobs, micro-batching, the bulk share, tenants.

One worker (one single-threaded process per core) on a local Redis, real clients in threads of this process:

  idle      one-text round trip through the interactive lane against the in-process Engine (median of 3 rounds)
  mixed     bulk jobs of --bulk-texts back to back + --clients one-text clients pausing --think-ms, against bulk
            alone and the clients alone in the same run; with the short shared texts and with 40-80-token texts
  overload  2 x --clients clients without a pause + bulk jobs: the bulk lane's share, and one-text throughput
            with micro-batching on against the same run with it off (LEPTON_MAX_BATCH_REQUESTS=1, no wait)
  tenants   tenant A (another process: another service) sending far over its quota beside tenant B: A gets
            429s, B's p99 against B alone

Every bulk job's output is checked (each input once); every one-text request must be answered once (the
worker's lepton_lane_requests_total equals the requests admitted). Writes a markdown report and a plot of
one-text latency over time with and without bulk load (default bench/results/mixed.md and mixed.png).

    python bench/mixed.py [--model sentiment@production] [--registry models] [--seconds 30]

Exit status 1 when anything was lost, duplicated or failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

import httpx  # noqa: E402
import psutil  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.soak import free_port, load_texts, percentile  # noqa: E402
from lepton_runtime.errors import QuotaExceededError  # noqa: E402
from lepton_runtime.inference import Engine  # noqa: E402
from lepton_runtime.inference.tokenization import TOKENIZER_FILE, TextEncoder  # noqa: E402
from lepton_runtime.machine import available_cores  # noqa: E402
from lepton_runtime.registry import ModelRegistry, ModelVersion  # noqa: E402
from lepton_runtime.settings import LeptonSettings  # noqa: E402
from producer import LeptonClient  # noqa: E402
from workers.embedded import LocalRedis  # noqa: E402
from workers.processes import WorkerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LONG_TOKENS = (40, 80)
# Tenant A's quota in the tenants scenario, and how many requests it keeps trying to have waiting.
TENANT_A_QUOTA = 4
TENANT_A_OVERLOAD = 10
# The lane settings the report names (LeptonSettings fields), as the workers read them.
LANE_SETTINGS = ("batch_wait_ms", "max_batch_requests", "bulk_min_share", "bulk_batch_tokens_beside_interactive")
RETRY_AFTER_429_S = 0.25


@dataclass
class Tally:
    """What one scenario's threads saw; guarded by one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, latency ms)
    rejected: int = 0
    admitted: int = 0  # requests admitted (tenant A's process counts them)
    bulk_jobs: int = 0
    lost: int = 0
    duplicated: int = 0
    failures: int = 0
    requests_checked: int = 0
    answers_missing: int = 0
    answers_extra: int = 0
    errors: list[str] = field(default_factory=list)

    def failed(self, what: str) -> None:
        with self.lock:
            self.failures += 1
            if len(self.errors) < 10:
                self.errors.append(what)

    @property
    def latencies_ms(self) -> list[float]:
        return [latency for _, latency in self.samples]


class Bench:
    """The Redis, the worker and the clients of one run."""

    def __init__(self, args: argparse.Namespace, version: ModelVersion, scratch: Path) -> None:
        self.args = args
        self.version = version
        self.scratch = scratch
        self.server = LocalRedis(free_port(), scratch / "redis")
        self.url = self.server.start()
        self.settings = bench_settings(self.url, version.path.parent.parent)
        self.processes = available_cores()
        self.worker: WorkerProcess | None = None
        self.metrics_port = 0
        self.admitted = 0  # interactive requests admitted, all scenarios
        self.admitted_before = 0  # ... when the running worker started
        self.admitted_lock = threading.Lock()
        self.cpu_shares: list[dict[str, float]] = []  # cores used by each part in each bulk window, in order

    def start_worker(self, tally: Tally, **env: str) -> None:
        self.stop_worker(tally)
        self.metrics_port = free_port()
        self.admitted_before = self.admitted
        environment = {
            **os.environ, "LEPTON_REDIS_URL": self.url, "LEPTON_MODEL_DIR": str(self.settings.model_dir), **env,
        }  # fmt: skip
        self.worker = WorkerProcess(
            environment, self.scratch / f"worker-{self.metrics_port}.log", processes=self.processes,
            arguments=["--threads", "1", "--warm", self.version.reference, "--metrics-port", str(self.metrics_port)],
            cwd=ROOT,
        )  # fmt: skip
        self.worker.wait_ready()

    def stop_worker(self, tally: Tally | None = None) -> None:
        """Stop the worker; with ``tally``, first check that it answered each request admitted meanwhile once."""
        if self.worker is None:
            return
        if tally is not None:
            expected = self.admitted - self.admitted_before
            deadline = time.monotonic() + 10
            while (answered := self.lane_answers()) < expected and time.monotonic() < deadline:
                time.sleep(0.1)  # the last answers' metrics are recorded just after they are stored
            with tally.lock:
                tally.requests_checked += expected
                tally.answers_missing += max(0, expected - round(answered))
                tally.answers_extra += max(0, round(answered) - expected)
        self.worker.stop()
        self.worker = None

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the worker's pool processes, its main process, Redis and this benchmark."""

        def used(process: psutil.Process) -> float:
            times = process.cpu_times()
            return times.user + times.system

        worker = psutil.Process(self.worker.pid) if self.worker is not None else None
        return {
            "pool": sum(used(child) for child in worker.children()) if worker else 0.0,
            "worker main": used(worker) if worker else 0.0,
            "redis": used(psutil.Process(self.server.process.pid)) if self.server.process else 0.0,
            "benchmark (clients, jobs)": used(psutil.Process()),
        }

    def lane_answers(self) -> float:
        """lepton_lane_requests_total of the running worker (every outcome)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("lepton_lane_requests_total{")
        )

    def close(self) -> None:
        self.stop_worker()
        self.server.stop()

    # -- traffic ----------------------------------------------------------------------------------------
    def one_text_client(
        self, texts: list[str], think_s: float, stop: threading.Event, tally: Tally, started: float, tenant: str
    ) -> None:
        chooser = random.Random(threading.get_ident())
        with LeptonClient(self.settings) as client:
            client.classify([texts[0]], model=self.version.reference, tenant=tenant).wait(60)  # connections, scripts
            with self.admitted_lock:
                self.admitted += 1
            while not stop.is_set():
                if think_s and stop.wait(think_s):
                    break
                sent = time.perf_counter()
                try:
                    job = client.classify([chooser.choice(texts)], model=self.version.reference, tenant=tenant)
                    with self.admitted_lock:
                        self.admitted += 1
                    (answer,) = job.wait(60)
                except QuotaExceededError:
                    with tally.lock:
                        tally.rejected += 1
                    continue
                except Exception as error:  # counted and reported, never hidden
                    tally.failed(f"classify: {type(error).__name__}: {error}")
                    continue
                done = time.perf_counter()
                if not hasattr(answer, "label"):
                    tally.failed(f"classify answered {answer}")
                    continue
                with tally.lock:
                    tally.samples.append((done - started, (done - sent) * 1000))

    def flooding_tenant(self, texts: list[str], tally: Tally) -> Callable[[], None]:
        """Tenant A: TENANT_A_OVERLOAD x its quota of clients without a pause, in a process of its own (another
        service: its threads must not take the GIL from tenant B's clients in this one). Returns a function that
        stops it and counts what it saw; it returns once A's clients are sending."""
        context = multiprocessing.get_context("spawn")
        stop, counts = context.Event(), context.Queue()
        process = context.Process(
            target=flood,
            args=(self.url, self.settings.model_dir, self.version.reference, texts, stop, counts),
            daemon=True,
        )
        process.start()
        if counts.get(timeout=120) != "sending":
            raise RuntimeError("tenant A's process did not start")

        def finish() -> None:
            stop.set()
            admitted, rejected, failures, errors = counts.get(timeout=120)
            process.join(timeout=60)
            with self.admitted_lock:
                self.admitted += admitted
            with tally.lock:
                tally.rejected += rejected
                tally.admitted += admitted
                tally.failures += failures
                tally.errors += errors

        return finish

    def bulk_jobs(self, texts: list[str], stop: threading.Event, tally: Tally, done: list[int]) -> None:
        """Bulk jobs back to back; ``done[0]``: texts finished so far (jobs finished + the running one)."""
        chooser = random.Random(5)
        size = self.args.bulk_texts
        with LeptonClient(self.settings) as client:
            while not stop.is_set():
                job = client.submit_bulk([chooser.choice(texts) for _ in range(size)], model=self.version.reference)
                while (status := client.status(job.id)).state not in {"succeeded", "failed", "cancelled"}:
                    done[1] = status.done_texts
                    time.sleep(0.05)  # polling the job's progress for the throughput figure, not synchronising
                ids = [row["id"] for row in client.results(job.id)]
                expected = {str(i) for i in range(size)}
                with tally.lock:
                    tally.bulk_jobs += 1
                    tally.lost += len(expected - set(ids))
                    tally.duplicated += len(ids) - len(set(ids))
                    done[0] += size
                    done[1] = 0
                if status.state != "succeeded":
                    tally.failed(f"bulk job {job.id} {status.state}")

    @contextmanager
    def bulk_load(self, texts: list[str], tally: Tally) -> Iterator[Callable[[], float]]:
        """Bulk jobs running for the block; yields a function giving the texts finished so far."""
        stop, done = threading.Event(), [0, 0]
        thread = threading.Thread(target=self.bulk_jobs, args=(texts, stop, tally, done), daemon=True)
        thread.start()
        try:
            yield lambda: float(done[0] + done[1])
        finally:
            stop.set()
            thread.join(timeout=1800)

    def clients(
        self, texts: list[str], count: int, think_s: float, seconds: float, tally: Tally, tenant: str = "default"
    ) -> float:
        """``count`` one-text clients for ``seconds``; returns the measured wall time."""
        stop = threading.Event()
        started = time.perf_counter()
        threads = [
            threading.Thread(
                target=self.one_text_client, args=(texts, think_s, stop, tally, started, tenant), daemon=True
            )
            for _ in range(count)
        ]
        for thread in threads:
            thread.start()
        stop.wait(seconds)  # the clock of the scenario, not a synchronisation
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        return time.perf_counter() - started


def bench_settings(url: str, model_dir: Path) -> LeptonSettings:
    """The settings of every client of the run (the benchmark's and tenant A's process): tenant A's quota set."""
    return LeptonSettings(redis_url=SecretStr(url), model_dir=model_dir, tenant_quotas={"a": TENANT_A_QUOTA})


def flood(url: str, model_dir: Path, reference: str, texts: list[str], stop: Any, counts: Any) -> None:
    """Tenant A's process: its clients send without a pause; a refused one tries again after RETRY_AFTER_429_S
    (sooner than the Retry-After it was given). Puts "sending", then (admitted, rejected, failures, errors)."""
    settings, tally = bench_settings(url, model_dir), Tally()

    def client_loop() -> None:
        chooser = random.Random(threading.get_ident())
        with LeptonClient(settings) as client:
            while not stop.is_set():
                try:
                    job = client.classify([chooser.choice(texts)], model=reference, tenant="a")
                except QuotaExceededError:
                    with tally.lock:
                        tally.rejected += 1
                    stop.wait(RETRY_AFTER_429_S)  # the client's own back-off, not a synchronisation
                    continue
                with tally.lock:
                    tally.admitted += 1
                try:
                    job.wait(60)
                except Exception as error:
                    tally.failed(f"tenant a: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(TENANT_A_QUOTA * TENANT_A_OVERLOAD)]
    for thread in threads:
        thread.start()
    counts.put("sending")
    for thread in threads:
        thread.join(timeout=180)
    counts.put((tally.admitted, tally.rejected, tally.failures, tally.errors))


def long_texts(texts: list[str], version: ModelVersion, count: int) -> list[str]:
    """Texts of 40-80 tokens: shared sentences joined three or four at a time."""
    encoder = TextEncoder(version.path / TOKENIZER_FILE, 512)
    chooser = random.Random(3)
    found: list[str] = []
    while len(found) < count:
        joined = " ".join(chooser.choice(texts) for _ in range(chooser.choice((3, 4))))
        tokens = len(encoder.encode([joined])[0].ids)
        if LONG_TOKENS[0] <= tokens <= LONG_TOKENS[1]:
            found.append(joined)
    return found


def measure_bulk(bench: Bench, texts: list[str], tally: Tally, window: Callable[[], Any]) -> tuple[float, Any]:
    """Bulk texts per second of back-to-back jobs while ``window()`` runs (after the first job has started:
    the measured window is steady state), and what ``window`` returned. Where the CPU went meanwhile is
    added to ``bench.cpu_shares`` (cores used by each part)."""
    with bench.bulk_load(texts, tally) as finished:
        time.sleep(min(3.0, bench.args.seconds / 4))  # let the first chunks start
        start_done, started, cpu_before = finished(), time.perf_counter(), bench.cpu_seconds()
        result = window()
        elapsed_s = time.perf_counter() - started
        cpu_after = bench.cpu_seconds()
        bench.cpu_shares.append(
            {part: round((cpu_after[part] - cpu_before.get(part, 0.0)) / elapsed_s, 3) for part in cpu_after}
        )
        return (finished() - start_done) / elapsed_s, result


def bulk_alone(bench: Bench, texts: list[str], tally: Tally) -> float:
    """Bulk texts per second over one window (--seconds) with nothing beside the jobs."""
    rate, _ = measure_bulk(bench, texts, tally, lambda: time.sleep(bench.args.seconds))  # the measured window
    return rate


def idle_round_trip(bench: Bench, texts: list[str], requests: int) -> dict[str, float]:
    """p50 and p99 of one-text requests one after another, in process and through the lane, median of 3 rounds."""
    engine = Engine(bench.version.path, intra_op_threads=1)
    chooser = random.Random(7)
    rounds: dict[str, list[float]] = {"in_p50": [], "in_p99": [], "lane_p50": [], "lane_p99": []}
    with LeptonClient(bench.settings) as client:
        for _ in range(3):
            local, lane = [], []
            for _ in range(requests):
                text = chooser.choice(texts)
                started = time.perf_counter()
                engine.classify([text])
                local.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                client.classify([text], model=bench.version.reference).wait(30)
                lane.append((time.perf_counter() - started) * 1000)
                with bench.admitted_lock:
                    bench.admitted += 1
            rounds["in_p50"].append(percentile(local, 0.5))
            rounds["in_p99"].append(percentile(local, 0.99))
            rounds["lane_p50"].append(percentile(lane, 0.5))
            rounds["lane_p99"].append(percentile(lane, 0.99))
    return {name: statistics.median(values) for name, values in rounds.items()}


def plot(series: dict[str, list[tuple[float, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4.5))
    for name, samples in series.items():
        if samples:
            xs, ys = zip(*sorted(samples), strict=True)
            axis.scatter(xs, ys, s=3, alpha=0.5, label=name)
    axis.set_yscale("log")
    axis.set_xlabel("seconds into the scenario")
    axis.set_ylabel("one-text latency (ms, log)")
    axis.axhline(50, color="grey", linestyle="--", linewidth=0.8)
    axis.axhline(250, color="grey", linestyle=":", linewidth=0.8)
    axis.set_title("One-text requests over time: alone, and beside back-to-back bulk jobs")
    axis.legend(markerscale=4)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def row(name: str, tally: Tally, seconds: float, offered_per_s: float | None = None) -> dict[str, Any]:
    latencies = tally.latencies_ms
    return {
        "scenario": name,
        "answered": len(latencies),
        "answered_per_s": len(latencies) / seconds if seconds else 0.0,
        "offered_per_s": offered_per_s,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "rejected": tally.rejected,
    }


SCENARIOS = ("idle", "short", "long", "overload", "tenants")


def run_idle(bench: Bench, texts: list[str], figures: dict[str, Any]) -> None:
    figures["idle"] = idle_round_trip(bench, texts, bench.args.idle_requests)


def run_mixed(
    bench: Bench, kind: str, texts: list[str], figures: dict[str, Any], rows: list[dict[str, Any]],
    series: dict[str, list[tuple[float, float]]], tally: Tally, progress: tqdm,
) -> None:  # fmt: skip
    """The clients alone, then each round bulk alone and bulk beside the clients (alternating, so that a slow
    spell of the machine hits both)."""
    args = bench.args
    think_s, window = args.think_ms / 1000, args.seconds
    offered = args.clients / think_s if think_s else None
    clients_alone = Tally()
    seconds = bench.clients(texts, args.clients, think_s, window, clients_alone)
    rows.append(row(f"{args.clients} clients alone, {kind} texts", clients_alone, seconds, offered))
    progress.update()
    mixed, alone_rates, mixed_rates, mixed_s = Tally(), [], [], 0.0
    for _ in range(args.rounds):
        alone = Tally()
        alone_rates.append(bulk_alone(bench, texts, alone))
        bench.cpu_shares[-1]["window"] = f"bulk alone, {kind}"
        merge(tally, alone)
        clients = functools.partial(bench.clients, texts, args.clients, think_s, window, mixed)
        rate, seconds = measure_bulk(bench, texts, mixed, clients)
        bench.cpu_shares[-1]["window"] = f"bulk + {args.clients} clients, {kind}"
        mixed_rates.append(rate)
        mixed_s += seconds
        progress.update(2)
    figures[f"bulk_alone_{kind}"] = statistics.median(alone_rates)
    figures[f"bulk_mixed_{kind}"] = statistics.median(mixed_rates)
    figures[f"bulk_ratios_{kind}"] = [m / a for m, a in zip(mixed_rates, alone_rates, strict=True)]
    figures[f"bulk_ratio_{kind}"] = statistics.median(figures[f"bulk_ratios_{kind}"])
    rows.append(row(f"{args.clients} clients + bulk jobs, {kind} texts", mixed, mixed_s, offered))
    if kind == "short":
        series["alone (short texts)"] = clients_alone.samples
        series["with bulk jobs (short texts)"] = mixed.samples
    else:
        series["with bulk jobs (40-80 tokens)"] = mixed.samples
    for part in (clients_alone, mixed):
        merge(tally, part)


def run_overload(
    bench: Bench, texts: list[str], figures: dict[str, Any], rows: list[dict[str, Any]], tally: Tally,
    progress: tqdm,
) -> None:  # fmt: skip
    """2 x --clients clients without a pause beside a bulk job, micro-batching on and off, alternating."""
    args = bench.args
    if "bulk_alone_short" not in figures:  # the short-text scenario did not run: bulk alone measured here
        alone = Tally()
        figures["bulk_alone_short"] = statistics.median(bulk_alone(bench, texts, alone) for _ in range(args.rounds))
        merge(tally, alone)
    overload = {"on": Tally(), "off": Tally()}
    rates: dict[str, list[float]] = {"on": [], "off": []}
    shares: dict[str, list[float]] = {"on": [], "off": []}
    overload_s = {"on": 0.0, "off": 0.0}
    for _ in range(args.rounds):
        for batching, env in (("on", {}), ("off", {"LEPTON_MAX_BATCH_REQUESTS": "1", "LEPTON_BATCH_WAIT_MS": "0"})):
            bench.start_worker(tally, **env)
            answered_before = len(overload[batching].samples)
            part = overload[batching]
            clients = functools.partial(bench.clients, texts, 2 * args.clients, 0.0, args.seconds, part)
            bulk_rate, seconds = measure_bulk(bench, texts, part, clients)
            overload_s[batching] += seconds
            rates[batching].append((len(overload[batching].samples) - answered_before) / seconds)
            shares[batching].append(bulk_rate / figures["bulk_alone_short"])
            progress.update()
    for batching in ("on", "off"):
        rows.append(row(f"{2 * args.clients} clients without pause + bulk, micro-batching {batching}",
                        overload[batching], overload_s[batching]))  # fmt: skip
        figures[f"overload_{batching}_per_s"] = statistics.median(rates[batching])
        figures[f"bulk_share_overload_{batching}"] = statistics.median(shares[batching])
        merge(tally, overload[batching])
    figures["overload_ratios"] = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    figures["overload_ratio"] = statistics.median(figures["overload_ratios"])
    bench.start_worker(tally)


def run_tenants(
    bench: Bench, texts: list[str], figures: dict[str, Any], rows: list[dict[str, Any]], tally: Tally,
    progress: tqdm,
) -> None:  # fmt: skip
    """Tenant B's 8 clients alone, then beside tenant A flooding at TENANT_A_OVERLOAD x its quota, per round."""
    args, reference = bench.args, bench.version.reference
    with LeptonClient(bench.settings) as client:  # each tenant's stream exists before the clock starts
        for tenant in ("a", "b"):
            client.classify(["hello"], model=reference, tenant=tenant).wait(30)
            bench.admitted += 1
    b_alone, b_beside, a_flood = Tally(), Tally(), Tally()
    p99_ratios, alone_s, beside_s = [], 0.0, 0.0
    for _ in range(args.rounds):
        alone_round, beside_round = Tally(), Tally()
        alone_s += bench.clients(texts, 8, 0.05, args.seconds, alone_round, tenant="b")
        finish_flood = bench.flooding_tenant(texts, a_flood)
        beside_s += bench.clients(texts, 8, 0.05, args.seconds, beside_round, tenant="b")
        finish_flood()
        p99_ratios.append(percentile(beside_round.latencies_ms, 0.99) / percentile(alone_round.latencies_ms, 0.99))
        progress.update(2)
        for total, part in ((b_alone, alone_round), (b_beside, beside_round)):
            total.samples += part.samples
            merge(total, part)
    rows.append(row("tenant B alone (8 clients, 50 ms pause)", b_alone, alone_s))
    rows.append(row(f"tenant B beside tenant A at {TENANT_A_OVERLOAD}x its quota", b_beside, beside_s))
    figures["tenant_a_rejected"] = a_flood.rejected
    figures["tenant_a_admitted_per_s"] = a_flood.admitted / beside_s if beside_s else 0.0
    figures["tenant_b_p99_ratios"] = p99_ratios
    figures["tenant_b_p99_ratio"] = statistics.median(p99_ratios)
    for part in (b_alone, b_beside, a_flood):
        merge(tally, part)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentiment@production", help="published reference (MiniLM on SST-2)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root (LEPTON_MODEL_DIR)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window of each scenario")
    parser.add_argument("--clients", type=int, default=32, help="one-text clients of the mixed load")
    parser.add_argument("--think-ms", type=float, default=500.0, help="pause of each client between requests")
    parser.add_argument("--bulk-texts", type=int, default=5000, help="texts per bulk job (jobs back to back)")
    parser.add_argument("--idle-requests", type=int, default=200, help="requests per round of the idle round trip")
    parser.add_argument("--texts", default=None, help="JSONL file of texts (default: shared sst2 + banking77)")
    parser.add_argument("--report", default=str(ROOT / "bench" / "results" / "mixed.md"), help="markdown report")
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each comparison (the report gives medians)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default all); the report is written only when all run, "
        "otherwise the figures are printed",
    )  # fmt: skip
    args = parser.parse_args()
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if unknown := sorted(set(chosen) - set(SCENARIOS)):
        parser.error(f"--scenarios: unknown {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")

    registry = ModelRegistry(args.registry)
    version = registry.resolve(args.model)  # fails with how to fix when nothing is published
    owner = registry.owner(version.name)
    if "tenants" in chosen and owner is not None and not owner.shared:  # tenant "a" runs it beside the owner
        registry.share(version.name, True)
        print(f"shared {version.name} (of tenant {owner.tenant}) with every tenant for the tenants scenario")
    short = load_texts(args.texts)
    long = long_texts(short, version, 2000)
    scratch = Path(tempfile.mkdtemp(prefix="lepton-mixed-"))
    bench = Bench(args, version, scratch)
    tally = Tally()  # exactness across every scenario
    figures: dict[str, Any] = {
        "model": version.reference, "cores": bench.processes,
        # what the workers read: the defaults, or LEPTON_* variables of this shell
        "settings": {f"LEPTON_{name.upper()}": getattr(bench.settings, name) for name in LANE_SETTINGS},
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    series: dict[str, list[tuple[float, float]]] = {}
    windows = {"idle": 1, "short": 1 + 2 * args.rounds, "long": 1 + 2 * args.rounds, "overload": 2 * args.rounds,
               "tenants": 2 * args.rounds}  # fmt: skip
    progress = tqdm(total=sum(windows[name] for name in chosen), desc="mixed", unit="window", file=sys.stderr)
    try:
        bench.start_worker(tally)
        if "idle" in chosen:
            run_idle(bench, short, figures)
            progress.update()
        for kind, texts in (("short", short), ("long", long)):
            if kind in chosen:
                run_mixed(bench, kind, texts, figures, rows, series, tally, progress)
        if "overload" in chosen:
            run_overload(bench, short, figures, rows, tally, progress)
        if "tenants" in chosen:
            run_tenants(bench, short, figures, rows, tally, progress)
        bench.stop_worker(tally)
    finally:
        progress.close()
        bench.close()

    figures["rows"] = rows
    figures["cpu_cores_by_window"] = bench.cpu_shares
    exactness = {name: getattr(tally, name) for name in EXACTNESS}
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, **exactness}, indent=1))
    if set(chosen) == set(SCENARIOS):
        report = Path(args.report)
        report.parent.mkdir(parents=True, exist_ok=True)
        plot(series, report.with_suffix(".png"))
        text = render(args, figures, rows, tally)
        report.write_text(text)
        print(text)
        print(f"wrote {report} and {report.with_suffix('.png')}")
    else:
        print(json.dumps({**figures, **exactness, "failure_messages": tally.errors}, indent=1))
    return 0 if all(getattr(tally, name) == 0 for name in EXACTNESS if name != "requests_checked") else 1


EXACTNESS = ("failures", "lost", "duplicated", "requests_checked", "answers_missing", "answers_extra")


def merge(total: Tally, part: Tally) -> None:
    total.admitted += part.admitted
    total.bulk_jobs += part.bulk_jobs
    total.lost += part.lost
    total.duplicated += part.duplicated
    total.failures += part.failures
    total.errors += part.errors


def render(args: argparse.Namespace, figures: dict[str, Any], rows: list[dict[str, Any]], tally: Tally) -> str:
    idle = figures["idle"]
    lines = [
        "# Online and bulk traffic on one fleet",
        "",
        f"`python bench/mixed.py --seconds {args.seconds:g}`: {figures['model']}, one worker of {figures['cores']} "
        f"single-threaded processes on a local Redis, clients in threads of the benchmark on the same cores; bulk jobs "
        f"of {args.bulk_texts:,} texts back to back; {args.clients} clients pausing {args.think_ms:g} ms would send "
        f"{args.clients / (args.think_ms / 1000):.0f} requests/s with zero latency. The workers' settings: "
        + ", ".join(f"{name}={value:g}" for name, value in figures["settings"].items())
        + ".",
        "",
        "## Idle round trip (median of 3 rounds)",
        "",
        "| | p50 | p99 |",
        "| --- | ---: | ---: |",
        f"| in process (`Engine.classify`, 1 thread) | {idle['in_p50']:.2f} ms | {idle['in_p99']:.2f} ms |",
        f"| through the interactive lane (`LeptonClient.classify([...]).wait()`) | {idle['lane_p50']:.2f} ms | "
        f"{idle['lane_p99']:.2f} ms |",
        f"| **added by the queue** | **+{idle['lane_p50'] - idle['in_p50']:.2f} ms** | "
        f"**+{idle['lane_p99'] - idle['in_p99']:.2f} ms** |",
        "",
        "## One-text requests",
        "",
        "| scenario | answered | answered/s | of offered | p50 | p99 | 429s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for item in rows:
        share = f"{item['answered_per_s'] / item['offered_per_s']:.0%}" if item["offered_per_s"] else "-"
        lines.append(
            f"| {item['scenario']} | {item['answered']:,} | {item['answered_per_s']:.1f} | {share} | "
            f"{item['p50_ms']:.1f} ms | {item['p99_ms']:.1f} ms | {item['rejected']:,} |"
        )
    lines += [
        "",
        "## Bulk throughput",
        "",
        "| scenario | texts/s | vs bulk alone (each round) |",
        "| --- | ---: | ---: |",
    ]
    rounds = args.rounds
    for kind in ("short", "long"):
        ratios = ", ".join(f"{r:.2f}" for r in figures[f"bulk_ratios_{kind}"])
        lines.append(
            f"| bulk alone, {kind} texts (median of {rounds}) | {figures[f'bulk_alone_{kind}']:,.0f} | 1.00x |"
        )
        mixed_rate, ratio = figures[f"bulk_mixed_{kind}"], figures[f"bulk_ratio_{kind}"]
        lines.append(
            f"| beside {args.clients} clients, {kind} texts (median of {rounds}) | {mixed_rate:,.0f} | "
            f"**{ratio:.2f}x** ({ratios}) |"
        )
    for batching in ("on", "off"):
        share = figures[f"bulk_share_overload_{batching}"]
        lines.append(f"| beside {2 * args.clients} clients without pause, micro-batching {batching} (median of "
                     f"{rounds}) | {share * figures['bulk_alone_short']:,.0f} | **{share:.2f}x** |")  # fmt: skip
    overload_ratios = ", ".join(f"{r:.2f}" for r in figures["overload_ratios"])
    tenant_ratios = ", ".join(f"{r:.2f}" for r in figures["tenant_b_p99_ratios"])
    lines += [
        "",
        f"Interactive overload: micro-batching on answers {figures['overload_on_per_s']:.0f} requests/s, off "
        f"{figures['overload_off_per_s']:.0f}/s (medians): **{figures['overload_ratio']:.2f}x** (rounds: "
        f"{overload_ratios}). Tenants: B's p99 beside A is **{figures['tenant_b_p99_ratio']:.2f}x** B alone (median "
        f"of {rounds}: {tenant_ratios}); tenant A (quota {TENANT_A_QUOTA}) got {figures['tenant_a_rejected']:,} "
        "answers 429.",
        "",
        "## Exactness",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| bulk jobs checked | {tally.bulk_jobs} |",
        f"| lost bulk results | **{tally.lost}** |",
        f"| duplicated bulk results | **{tally.duplicated}** |",
        f"| one-text requests admitted (each answered once?) | {tally.requests_checked:,} |",
        f"| one-text requests never answered | **{tally.answers_missing}** |",
        f"| one-text requests answered twice | **{tally.answers_extra}** |",
        f"| failed requests or jobs | {tally.failures} |",
        "",
        *(f"- failure: {error}" for error in tally.errors),
        "",
        "![one-text latency over time](mixed.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
