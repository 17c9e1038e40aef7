"""A 1,000,000-row dataset job through the object store while faults strike: pool processes and a whole worker
SIGKILLed, the store unreachable for 20 s, the Redis primary SIGKILLed (the Sentinels fail over). Then a checker
reads the output through its manifest: every id once, in input order; no part referenced twice, none missing, none
left in the output folder that the manifest does not name.

The fleet is chaos.py's (bench/chaos.py): a Redis primary, its replica and three Sentinels; two workers of one pool
process each, running a tiny BERT (the coordination is under test, not the model). The object store is moto's S3
server (as in the fleet tests) behind a TCP link the run takes down (tests/store_fixtures.py ``StoreLink``): the
workers reach the store only through it. Faults strike at points of the job's progress, so that each lands while
the job runs whatever the machine's speed; the Redis failover strikes in the middle of the store outage. Nobody
steps in: the job must finish on its own. Writes bench/results/scale-faults.md and exits 1 when the checker finds
anything.

    python bench/scale_faults.py [--rows 1000000] [--chunk-size 2000] [--store-outage-s 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's `queue`: keep this folder off the path, the repository on it
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import psutil  # noqa: E402
import s3fs  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.chaos import VISIBILITY_TIMEOUT_S, Fault, Fleet, through_outages, verdict  # noqa: E402
from bench.scale import check_output, tiny_model, write_dataset  # noqa: E402
from lepton_runtime.constants import REDIS_KEY_PREFIX  # noqa: E402
from lepton_runtime.jobs.parts import MANIFEST_FILE  # noqa: E402
from lepton_runtime.registry import ModelRegistry  # noqa: E402
from producer import LeptonClient  # noqa: E402
from tests.store_fixtures import CREDENTIALS, S3Server, StoreLink  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESTORE_INTERVAL_S = 5.0
# How far into the Redis failover's fault the store outage has run when the primary is killed.
FAILOVER_INTO_OUTAGE_S = 8.0


@dataclass
class Step:
    """One fault of the run: struck once the job has done ``at_share`` of its rows."""

    at_share: float
    fault: Fault
    done_share: float | None = None  # the job's progress when it struck
    ended_s: float | None = None


def plan(store_outage_s: float) -> list[Step]:
    """5 pool kills (alternating workers), a whole worker killed (back after 3 s), the store outage (the failover
    in its middle): spread over the first 60 % of the job, so that the last part runs after every fault healed."""
    steps = [Step(0.04 + 0.05 * index, Fault(0, "kill-pool-process", index % 2, 0.0)) for index in range(5)]
    steps.append(Step(0.30, Fault(0, "kill-worker", 1, 3.0)))
    steps.append(Step(0.40, Fault(0, "store-outage", 0, store_outage_s)))
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the dataset")
    parser.add_argument("--chunk-size", type=int, default=2000, help="rows per chunk (and per Parquet row group)")
    parser.add_argument("--store-outage-s", type=float, default=20.0, help="how long the store is unreachable")
    parser.add_argument("--report", default=str(ROOT / "bench" / "results" / "scale-faults.md"), help="markdown")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # unwind: stop servers and workers

    scratch = Path(tempfile.mkdtemp(prefix="lepton-scale-faults-"))
    os.environ.update(CREDENTIALS)  # the store's clients read them from the environment, as in production
    registry = ModelRegistry(scratch / "models")
    model = tiny_model(registry, scratch)
    s3 = S3Server().start()
    link = StoreLink(s3.port).up()
    bucket = s3.new_bucket()
    store = f"{bucket.url}/store"
    corpus = f"{store}/tenants/default/corpus/"
    local_corpus = scratch / "corpus"
    write_dataset(local_corpus, args.rows, args.chunk_size, files=4)
    s3fs.S3FileSystem(endpoint_url=s3.endpoint_url, skip_instance_cache=True).put(
        f"{local_corpus}/", corpus, recursive=True
    )
    env = {key: value for key, value in os.environ.items() if key != "LEPTON_REDIS_URL"}
    env |= {
        "LEPTON_MODEL_DIR": str(registry.root), "LEPTON_DATA_STORE": store,
        "LEPTON_S3_ENDPOINT_URL": link.endpoint_url,  # the workers reach the store only through the link
        "LEPTON_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S), "LEPTON_RESTORE_INTERVAL_S": str(RESTORE_INTERVAL_S),
    }  # fmt: skip
    fleet = Fleet(scratch, env, model, workers=2)
    settings = fleet.group.settings(
        model_dir=registry.root, data_store=store, s3_endpoint_url=s3.endpoint_url, redis_wait_replicas=1
    )
    steps = plan(args.store_outage_s)
    failover = Step(0.0, Fault(0, "kill-primary", 0, 5.0))
    checks: dict[str, str] = {}
    ok = False
    try:
        fleet.group.start()
        for slot in range(2):
            fleet.start_worker(slot)
        with LeptonClient(settings) as client:
            job = client.submit_bulk(corpus, model=model, chunk_size=args.chunk_size)
            began = time.monotonic()

            def share_done() -> float:
                return through_outages(lambda: client.status(job.id).done_texts) / args.rows

            def strike(step: Step) -> None:
                step.done_share = share_done()
                if step.fault.kind == "store-outage":
                    step.fault.started_s = round(time.monotonic() - began, 1)
                    link.down()
                    time.sleep(FAILOVER_INTO_OUTAGE_S)  # the outage's first part
                    failover.done_share = share_done()
                    strike_thread = threading.Thread(target=fleet.strike, args=(failover.fault, began))
                    strike_thread.start()
                    time.sleep(step.fault.duration_s - FAILOVER_INTO_OUTAGE_S)  # the rest of the outage
                    link.up()
                    step.fault.note = "the link to the store refused and cut every connection"
                    strike_thread.join()
                    failover.ended_s = round(time.monotonic() - began, 1)
                else:
                    fleet.strike(step.fault, began)
                step.ended_s = round(time.monotonic() - began, 1)

            bar = tqdm(total=args.rows, desc="job under faults", unit="rows", unit_scale=True, mininterval=1)
            with bar:
                pending = list(steps)
                while True:
                    status = through_outages(lambda: client.status(job.id))
                    bar.update(status.done_texts - bar.n)
                    if pending and status.done_texts >= pending[0].at_share * args.rows and not status.finished:
                        strike(pending.pop(0))
                        continue
                    if status.finished:
                        break
                    time.sleep(0.5)  # progress is read, not waited on: nothing else to wait for
            made = [s for s in [*steps, failover] if s.fault.started_s is not None and "could not" not in s.fault.note]
            checks["faults struck while the job ran"] = f"{len(made)} of {len(steps) + 1}"
            checks["job state (no manual step)"] = status.state
            run_s = time.monotonic() - began
            if status.state == "succeeded":
                rows, _ = check_output(client, job.id, args.rows)
                checks["rows in the output, each id once, in input order"] = f"{rows:,}"
                manifest = client.bulk_data.manifest(client.jobs, job.id)
                names = [part.name for part in manifest.parts]
                checks["parts referenced twice"] = str(len(names) - len(set(names)))
                checks["chunks without a part"] = str(status.total_chunks - len(set(names)))
                fs, path = client.data.filesystem(status.output or "")
                present = {Path(name).name for name in fs.ls(path, detail=False)}
                checks["files in the output folder the manifest does not name"] = str(
                    len(present - set(names) - {MANIFEST_FILE})
                )
            unacked = client.redis.hlen(f"{REDIS_KEY_PREFIX}unacked")
            checks["messages left unacknowledged"] = str(unacked)
        checks["workers alive"] = f"{sum(fleet.worker(s).process.poll() is None for s in range(2))} of 2"
        ok = (
            checks["job state (no manual step)"] == "succeeded"
            and checks.get("rows in the output, each id once, in input order") == f"{args.rows:,}"
            and checks["faults struck while the job ran"] == f"{len(steps) + 1} of {len(steps) + 1}"
            and checks.get("parts referenced twice") == checks.get("chunks without a part") == "0"
            and checks.get("files in the output folder the manifest does not name") == "0"
            and checks["workers alive"] == "2 of 2"
        )
    finally:
        fleet.stop()
        link.down()
        s3.stop()

    struck = sorted([*steps, failover], key=lambda step: step.fault.started_s or 0)
    kinds = Counter(step.fault.kind for step in struck if step.fault.started_s is not None)
    lines = [
        f"# A {args.rows:,}-row dataset job under faults",
        "",
        f"`python bench/scale_faults.py --rows {args.rows} --chunk-size {args.chunk_size}`: a Parquet dataset in"
        f" moto's S3 server ({args.rows // args.chunk_size:,} chunks of {args.chunk_size:,} rows), a tiny BERT, two"
        f" workers of one pool process each, a Redis primary, its replica and 3 Sentinels, {psutil.cpu_count()} cores."
        f" Faults: {', '.join(f'{kind} {count}' for kind, count in sorted(kinds.items()))}; the failover struck"
        f" {FAILOVER_INTO_OUTAGE_S:g} s into the store outage. Verdict: **{'PASS' if ok else 'FAIL'}**.",
        "",
        "| checker | value |",
        "| --- | ---: |",
        *(f"| {name} | {value} |" for name, value in checks.items()),
        f"| wall time of the job | {run_s:,.0f} s ({args.rows / run_s:,.0f} rows/s with the faults) |",
        "",
        "| struck (s) | ended (s) | job done then | fault | worker | lasted (s) | note |",
        "| ---: | ---: | ---: | --- | ---: | ---: | --- |",
        *(
            f"| {'' if s.fault.started_s is None else f'{s.fault.started_s:.1f}'} | {s.ended_s or ''} | "
            f"{'' if s.done_share is None else f'{s.done_share:.0%}'} | {s.fault.kind} | "
            f"{s.fault.slot if s.fault.kind.startswith('kill-') and s.fault.kind != 'kill-primary' else ''} | "
            f"{s.fault.duration_s:g} | {s.fault.note} |"
            for s in struck
        ),
    ]
    return verdict(Path(args.report), lines, ok, scratch)


if __name__ == "__main__":
    sys.exit(main())
