"""What LEPTON_REDIS_WAIT_REPLICAS costs: the time to submit a bulk job (texts into Redis, chunks enqueued, the id
back) to a primary with one replica, replication asynchronous (the baseline) against WAIT for the replica, measured
in this one run, alternating, medians. Writes bench/results/replication.md.

The WAIT is one round trip to the replica per submission (the job and its messages are then on two servers); the
workers' path is unchanged, so throughput once submitted is the same.

    python bench/replication.py [--model intents@production] [--texts 2000] [--repeats 15]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's queue (redis-py imports it): keep this folder off the path
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

import argparse  # noqa: E402
import platform  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from pydantic import SecretStr  # noqa: E402
from rich.progress import track  # noqa: E402

from bench.shared_data import real_texts, repeated  # noqa: E402
from lepton_runtime.machine import free_port  # noqa: E402
from lepton_runtime.settings import LeptonSettings  # noqa: E402
from producer import LeptonClient  # noqa: E402
from workers.embedded import LocalRedis  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="intents@production", help="a published model (`make demo` makes this)")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--texts", type=int, default=2000, help="texts per submitted job")
    parser.add_argument("--repeats", type=int, default=15, help="submissions per setting")
    args = parser.parse_args()

    texts = repeated(real_texts(seed=7), args.texts)
    with tempfile.TemporaryDirectory() as scratch:
        common = "repl-diskless-sync-delay 0\n"
        primary = LocalRedis(free_port(), Path(scratch) / "primary", extra_config=common)
        primary_url = primary.start()
        replica = LocalRedis(
            free_port(), Path(scratch) / "replica", extra_config=f"{common}replicaof 127.0.0.1 {primary.port}\n"
        )
        replica.start()
        clients = {
            replicas: LeptonClient(
                LeptonSettings(redis_url=SecretStr(primary_url), model_dir=args.model_dir, redis_wait_replicas=replicas)
            )
            for replicas in (0, 1)
        }
        seconds: dict[int, list[float]] = {0: [], 1: []}
        try:
            for replicas in (0, 1):
                clients[replicas].submit_bulk(texts[:100], model=args.model)  # warm: model resolved, scripts loaded
            for _ in track(range(args.repeats), description="submitting"):
                for replicas in (0, 1):  # alternating: the machine's noise falls on both alike
                    started = time.perf_counter()
                    clients[replicas].submit_bulk(texts, model=args.model)
                    seconds[replicas].append(time.perf_counter() - started)
        finally:
            for client in clients.values():
                client.close()
            replica.stop()
            primary.stop()

    base_ms, wait_ms = (statistics.median(seconds[replicas]) * 1000 for replicas in (0, 1))
    ratio = wait_ms / base_ms
    lines = [
        "# The cost of LEPTON_REDIS_WAIT_REPLICAS",
        "",
        f"`python bench/replication.py --texts {args.texts} --repeats {args.repeats}` on {socket.gethostname()}: "
        f"{platform.machine()}, a primary and one replica on loopback, {args.model}. One bulk job submitted per "
        "sample (texts stored, chunks enqueued, id returned), the two settings alternating; medians.",
        "",
        "| setting | submit median (ms) | min | max |",
        "| --- | --- | --- | --- |",
    ]
    for replicas, label in ((0, "asynchronous replication (baseline)"), (1, "WAIT for 1 replica")):
        lines.append(
            f"| {label} | {statistics.median(seconds[replicas]) * 1000:.1f} | {min(seconds[replicas]) * 1000:.1f} "
            f"| {max(seconds[replicas]) * 1000:.1f} |"
        )
    lines += ["", f"WAIT / baseline: **{ratio:.3f}x** the submit time ({wait_ms - base_ms:+.1f} ms per job)."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "replication.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
