"""The nemesis run: bulk jobs and one-text clients through a Sentinel-watched Redis and two workers, while a seeded
random schedule of overlapping faults strikes; then a checker reads every outcome (Jepsen's method, on one host).

Faults (each with a duration; the schedule overlaps them, one Redis fault at a time, one fault per worker):

    kill-pool-process   SIGKILL of a worker's pool process (Celery starts another)
    kill-worker         SIGKILL of a whole worker (main process and pool); a new one starts after the outage
    pause-worker        SIGSTOP of a whole worker for longer than its lease, then SIGCONT
    kill-primary        SIGKILL of the Redis primary: the Sentinels promote the replica; the killed server rejoins
                        as the new primary's replica after the outage
    cut-replica         the replica drops its link to the primary and is paused (it misses writes), then resumes
    restart-replica     the replica shut down and started again (append-only file, then a resync)
    cut-network         a worker's network link taken down (packets dropped, no reset: a partition), for a few
                        seconds or for longer than its lease, then up again. Only where network namespaces can be
                        made (root, iproute2): each worker then runs on a host of its own (tests/reliability/network.py)

The checker: every input of every bulk job answered exactly once, in order; every one-text request answered or
failed with a stable code, none still unanswered past its deadline; after the faults are healed, no message left
unacknowledged and every worker alive and running a last job. The schedule is a function of ``--seed`` alone, so a
failing seed is replayed with the same faults at the same offsets. Writes bench/results/chaos.md (every fault with
its time) and exits 1 when the checker finds anything.

    python bench/chaos.py [--minutes 10] [--seed 1] [--model intents@production] [--registry models]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's queue (redis-py imports it): keep this folder off the path
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import TypeVar  # noqa: E402

import psutil  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.shared_data import real_texts  # noqa: E402
from lepton_runtime.constants import REDIS_KEY_PREFIX  # noqa: E402
from lepton_runtime.errors import JobNotFoundError, JobTimeoutError, LeptonError  # noqa: E402
from lepton_runtime.registry import ModelRegistry  # noqa: E402
from lepton_runtime.settings import LeptonSettings  # noqa: E402
from lepton_runtime.text_files import jsonl_rows  # noqa: E402
from producer import LeptonClient  # noqa: E402
from tests.reliability.network import IsolatedHost, isolated_host, namespaces_unavailable  # noqa: E402
from tests.reliability.sentinels import SentinelGroup  # noqa: E402
from workers.processes import WorkerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
FAULT_KINDS = ("kill-pool-process", "kill-worker", "pause-worker", "kill-primary", "cut-replica", "restart-replica")
# Struck only where network namespaces can be made: a seed's schedule differs between machines with and without.
NETWORK_FAULT = "cut-network"
REDIS_FAULTS = {"kill-primary", "cut-replica", "restart-replica"}
# How long a kill-pool-process fault waits for Celery to have replaced the pool process a fault killed before.
POOL_RESTART_TIMEOUT_S = 30.0
# Worker settings of the run: the default lease (a paused or dead worker's messages come back in about 25 s).
VISIBILITY_TIMEOUT_S = 20.0
RESTORE_INTERVAL_S = 5.0
# No fault in the first seconds (the fleet warms up) nor in the last part of the run (the last jobs run in peace).
QUIET_START_S, QUIET_END_S, QUIET_END_SHARE = 15.0, 45.0, 0.3
# A one-text request's deadline, and how much longer a client waits before it calls the request hung.
DEADLINE_S, HUNG_AFTER_S = 30.0, 60.0


@dataclass
class Fault:
    """One fault of the schedule: when (seconds into the run), what, on which worker slot, for how long."""

    at_s: float
    kind: str
    slot: int
    duration_s: float
    started_s: float | None = None  # when it really struck (later when its resource was still held)
    note: str = ""


def schedule(
    seed: int, duration_s: float, mean_gap_s: float, workers: int, kinds: tuple[str, ...] = FAULT_KINDS
) -> list[Fault]:
    """The faults of a run, a pure function of its arguments (the replay of a failing seed)."""
    chooser = random.Random(seed)
    faults, at_s = [], QUIET_START_S
    last_s = duration_s - min(QUIET_END_S, QUIET_END_SHARE * duration_s)
    while (at_s := at_s + chooser.expovariate(1 / mean_gap_s)) < last_s:
        kind = chooser.choice(kinds)
        duration_s_of = {
            "kill-pool-process": 0.0,
            "kill-worker": chooser.uniform(1, 8),
            "pause-worker": chooser.uniform(VISIBILITY_TIMEOUT_S + 2, VISIBILITY_TIMEOUT_S + 12),
            "kill-primary": chooser.uniform(5, 15),
            "cut-replica": chooser.uniform(1, 5),
            "restart-replica": chooser.uniform(1, 5),
            # from a blip its connections ride out to a partition that outlasts its lease
            NETWORK_FAULT: chooser.uniform(2, VISIBILITY_TIMEOUT_S + 12),
        }
        faults.append(Fault(round(at_s, 1), kind, chooser.randrange(workers), round(duration_s_of[kind], 1)))
    return faults


@dataclass
class Outcomes:
    """What the traffic saw; guarded by one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    bulk_jobs: int = 0
    bulk_texts: int = 0
    lost: int = 0
    duplicated: int = 0
    failed_jobs: list[str] = field(default_factory=list)
    answered: int = 0
    failed_codes: Counter[str] = field(default_factory=Counter)
    hung: int = 0
    refused_submissions: Counter[str] = field(default_factory=Counter)
    # jobs whose id came back with the replica's WAIT unanswered (it was cut off), then lost with the primary:
    # the README's promise allows it; a lost job that a replica had held is a failure (failed_jobs)
    unheld_lost: int = 0


class Fleet:
    """The Sentinel group and the worker slots; a fault holds its resource's lock while it lasts.

    ``hosts``: one network namespace per slot (its worker runs there, and the group listens on the first one's host
    end, which every namespace reaches), or none: the workers run here and no network fault can strike."""

    def __init__(
        self, root: Path, env: dict[str, str], model: str, workers: int, hosts: list[IsolatedHost] | None = None
    ) -> None:
        self.root, self.env, self.model = root, env, model
        self.hosts = hosts or []
        self.group = SentinelGroup(root / "redis", address=self.hosts[0].host_address if self.hosts else "127.0.0.1")
        self.redis_lock = threading.Lock()
        self.slot_locks = [threading.Lock() for _ in range(workers)]
        self.slots: list[WorkerProcess | None] = [None] * workers
        self.killed_pids: set[int] = set()
        self.started = 0

    def start_worker(self, slot: int) -> None:
        self.started += 1
        worker = WorkerProcess(
            {**self.env, **self.group.env}, self.root / f"worker-{slot}-{self.started}.log", processes=1,
            arguments=["--threads", "1", "--warm", self.model], name_prefix=f"chaos{slot}", cwd=ROOT,
            run_through=self.hosts[slot].run_through if self.hosts else (),
        )  # fmt: skip
        self.slots[slot] = worker
        worker.wait_ready()

    def worker(self, slot: int) -> WorkerProcess:
        worker = self.slots[slot]
        assert worker is not None
        return worker

    def strike(self, fault: Fault, began: float) -> None:
        """Run one fault to its end, holding its resource (so faults on one resource queue up)."""
        lock = self.redis_lock if fault.kind in REDIS_FAULTS else self.slot_locks[fault.slot]
        with lock:
            fault.started_s = round(time.monotonic() - began, 1)
            try:
                self._strike(fault)
            except Exception as error:  # a fault that could not be made is reported, not hidden
                fault.note = f"could not strike: {type(error).__name__}: {error}"

    def _strike(self, fault: Fault) -> None:
        group = self.group
        if fault.kind == "kill-pool-process":
            pid = self._live_pool_process(fault.slot)
            os.kill(pid, signal.SIGKILL)
            self.killed_pids.add(pid)
            fault.note = f"pool process {pid}"
        elif fault.kind == "kill-worker":
            self.worker(fault.slot).kill()
            time.sleep(fault.duration_s)  # the outage itself
            self.start_worker(fault.slot)
        elif fault.kind == "pause-worker":
            worker = self.worker(fault.slot)
            os.killpg(worker.pid, signal.SIGSTOP)
            try:
                time.sleep(fault.duration_s)  # the pause itself
            finally:
                os.killpg(worker.pid, signal.SIGCONT)
        elif fault.kind == "kill-primary":
            killed = group.kill_primary()
            group.wait_for_failover(timeout_s=60)
            fault.note = f"primary :{killed} killed, replica :{group.primary.port} promoted"
            time.sleep(fault.duration_s)  # the group runs without a replica meanwhile
            group.rejoin()
        elif fault.kind == "cut-replica":
            group.cut_and_pause_replica()
            try:
                time.sleep(fault.duration_s)
            finally:
                group.continue_replica()
        elif fault.kind == "restart-replica":
            group.replica.stop()
            time.sleep(fault.duration_s)
            group.rejoin()
        elif fault.kind == NETWORK_FAULT:
            host = self.hosts[fault.slot]
            host.cut()
            fault.note = f"link {host.host_interface} down"
            try:
                time.sleep(fault.duration_s)  # the partition itself
            finally:
                host.rejoin()

    def _live_pool_process(self, slot: int, timeout_s: float = POOL_RESTART_TIMEOUT_S) -> int:
        """The pid of the slot's worker's pool process, once Celery has replaced one that a fault killed (two kills
        in a row strike two processes, not one twice)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(self.worker(slot).pid).children():
                    if child.pid not in self.killed_pids and child.status() != psutil.STATUS_ZOMBIE:
                        return child.pid
            time.sleep(0.2)  # Celery starts the replacement on its own clock: nothing to wait on but the process table
        raise RuntimeError(f"worker {slot} had no live pool process for {timeout_s:.0f} s")

    def heal(self) -> None:
        """Every worker continued, on line and alive (a worker that died outside the schedule counts as stuck)."""
        for slot in range(len(self.slots)):
            with self.slot_locks[slot], contextlib.suppress(ProcessLookupError):
                if self.hosts:
                    self.hosts[slot].rejoin()
                os.killpg(self.worker(slot).pid, signal.SIGCONT)

    def stop(self) -> None:
        for worker in self.slots:
            if worker is not None:
                worker.stop()
        self.group.stop()


def bulk_traffic(
    settings: LeptonSettings, model: str, texts: list[str], size: int, stop: threading.Event, seen: Outcomes
) -> None:
    """Bulk jobs back to back, each checked: every input once, in order."""
    chooser = random.Random(5)
    with LeptonClient(settings) as client:
        while not stop.is_set():
            batch = [chooser.choice(texts) for _ in range(size)]
            try:
                job = client.submit_bulk(batch, model=model)
            except Exception as error:  # refused (Redis failing over): no id was handed out, nothing to check
                with seen.lock:
                    seen.refused_submissions[getattr(error, "code", type(error).__name__)] += 1
                stop.wait(1.0)  # back off before the next submission, as a caller would
                continue
            job_id = job.id
            try:
                status = through_outages(lambda: client.jobs.wait(job_id, 900))  # noqa: B023 (called at once)
                ids = (
                    through_outages(lambda: [row["id"] for row in client.results(job_id)])  # noqa: B023 (called at once)
                    if status.state in ("succeeded", "failed")
                    else []
                )
            except JobNotFoundError:  # lost with a primary: allowed only when no replica held it at submit
                with seen.lock:
                    if job.replicas:
                        seen.failed_jobs.append(f"{job.id}: lost in a failover though {job.replicas} replica held it")
                    else:
                        seen.unheld_lost += 1
                continue
            expected = [str(i) for i in range(size)]
            with seen.lock:
                seen.bulk_jobs += 1
                seen.bulk_texts += size
                seen.lost += len(set(expected) - set(ids))
                seen.duplicated += len(ids) - len(set(ids))
                if status.state != "succeeded" or ids != expected:
                    seen.failed_jobs.append(f"{job.id}: {status.state} {[f.code for f in status.failures][:3]}")


def through_outages(call: Callable[[], T], timeout_s: float = 900) -> T:
    """``call()``, taken up again while Redis fails over under it (a wait that times out is not retried)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except (JobTimeoutError, JobNotFoundError):  # not an outage: asking again cannot help
            raise
        except Exception:  # Redis failing over: ask again
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # a failover takes seconds: nothing to wait on but the Sentinels


def one_text_traffic(
    settings: LeptonSettings, model: str, texts: list[str], stop: threading.Event, seen: Outcomes
) -> None:
    """One-text requests with a deadline: answered, or failed with a code; never unanswered past the deadline."""
    chooser = random.Random(threading.get_ident())
    with LeptonClient(settings) as client:
        while not stop.wait(0.2):  # a client pauses between requests
            try:
                (answer,) = client.classify([chooser.choice(texts)], model=model, deadline_s=DEADLINE_S).wait(
                    HUNG_AFTER_S
                )
                outcome = "answered" if hasattr(answer, "label") else f"item:{answer.code}"
            except JobTimeoutError:
                outcome = "hung"
            except LeptonError as error:
                outcome = error.code
            except Exception as error:  # not a code of ours: counted apart, and it fails the run
                outcome = f"uncoded {type(error).__name__}"
            with seen.lock:
                if outcome == "answered":
                    seen.answered += 1
                elif outcome == "hung":
                    seen.hung += 1
                else:
                    seen.failed_codes[outcome] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long traffic and faults run")
    parser.add_argument("--seed", type=int, default=1, help="the schedule's seed (replay a failing run with it)")
    parser.add_argument("--mean-gap-s", type=float, default=12.0, help="mean time between fault starts")
    parser.add_argument("--clients", type=int, default=8, help="concurrent one-text clients")
    parser.add_argument("--bulk-texts", type=int, default=3000, help="texts per bulk job (jobs run back to back)")
    parser.add_argument("--model", default="intents@production", help="published reference (make demo)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root (LEPTON_MODEL_DIR)")
    parser.add_argument("--texts", default=None, help="JSONL file of texts (default: shared sst2 + banking77)")
    parser.add_argument("--report", default=str(ROOT / "bench" / "results" / "chaos.md"), help="markdown report")
    args = parser.parse_args()
    # stopped from outside (a time limit, Ctrl-C's cousin): unwind, so that the fleet's Redis servers, Sentinels
    # and workers (each in its own session) are stopped too and not left running
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    version = ModelRegistry(args.registry).resolve(args.model)  # says how to fix when nothing is published
    texts = [str(row["text"]) for _, row in jsonl_rows(Path(args.texts))] if args.texts else real_texts(seed=11)
    duration_s = args.minutes * 60
    no_network_why = namespaces_unavailable()
    fault_kinds = FAULT_KINDS if no_network_why else (*FAULT_KINDS, NETWORK_FAULT)
    faults = schedule(args.seed, duration_s, args.mean_gap_s, workers=2, kinds=fault_kinds)
    scratch = Path(tempfile.mkdtemp(prefix="lepton-chaos-"))
    env = {key: value for key, value in os.environ.items() if key != "LEPTON_REDIS_URL"}
    env |= {
        "LEPTON_MODEL_DIR": str(Path(args.registry).resolve()),
        "LEPTON_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "LEPTON_RESTORE_INTERVAL_S": str(RESTORE_INTERVAL_S),
    }
    hosts_made = contextlib.ExitStack()  # the workers' network namespaces, removed when the run ends
    try:
        hosts = None if no_network_why else [hosts_made.enter_context(isolated_host(slot)) for slot in range(2)]
    except BaseException:  # the second could not be made: the first is removed too
        hosts_made.close()
        raise
    fleet = Fleet(scratch, env, version.reference, workers=2, hosts=hosts)
    # the clients ask a replica to hold each submission before its id comes back (README: what a failover may lose)
    settings = fleet.group.settings(model_dir=Path(args.registry).resolve(), redis_wait_replicas=1)
    seen, stop = Outcomes(), threading.Event()
    checks: dict[str, str] = {}
    try:
        fleet.group.start()
        for slot in range(2):
            fleet.start_worker(slot)
        threads = [
            threading.Thread(
                target=bulk_traffic, daemon=True, args=(settings, version.reference, texts, args.bulk_texts, stop, seen)
            )
        ]
        threads += [threading.Thread(target=one_text_traffic, daemon=True,
                                     args=(settings, version.reference, texts, stop, seen))
                    for _ in range(args.clients)]  # fmt: skip
        began = time.monotonic()
        for thread in threads:
            thread.start()
        strikes: list[threading.Thread] = []
        pending = list(faults)
        bar = tqdm(total=round(duration_s), unit="s", desc=f"chaos (seed {args.seed})", file=sys.stderr, mininterval=2)
        with bar:
            while (elapsed := time.monotonic() - began) < duration_s:
                while pending and pending[0].at_s <= elapsed:
                    strike = threading.Thread(target=fleet.strike, args=(pending.pop(0), began), daemon=True)
                    strike.start()
                    strikes.append(strike)
                stop.wait(0.2)  # the schedule's clock, not a synchronisation
                bar.set_postfix(faults=len(faults) - len(pending), jobs=seen.bulk_jobs, answered=seen.answered,
                                refresh=False)  # fmt: skip
                bar.update(round(elapsed) - bar.n)
        stop.set()
        for strike in strikes:
            strike.join(timeout=300)
        fleet.heal()
        for thread in threads:
            thread.join(timeout=900)
        checks["traffic threads finished"] = "yes" if not any(t.is_alive() for t in threads) else "NO"
        with LeptonClient(settings) as client:
            last = client.submit_bulk(texts[:500], model=version.reference)  # every worker runs again after all
            final = through_outages(lambda: client.jobs.wait(last.id, 300))
            checks["a last job after the faults"] = final.state
            unacked = client.redis.hlen(f"{REDIS_KEY_PREFIX}unacked")
            deadline = time.monotonic() + 2 * (VISIBILITY_TIMEOUT_S + 2 * RESTORE_INTERVAL_S)
            while unacked and time.monotonic() < deadline:
                time.sleep(1.0)  # messages of killed workers come back within their lease
                unacked = client.redis.hlen(f"{REDIS_KEY_PREFIX}unacked")
            checks["messages left unacknowledged"] = str(unacked)
        checks["workers alive"] = f"{sum(fleet.worker(s).process.poll() is None for s in range(2))} of 2"
        elapsed_s = time.monotonic() - began
    finally:
        fleet.stop()
        hosts_made.close()

    struck = [fault for fault in faults if fault.started_s is not None and not fault.note.startswith("could not")]
    uncoded = sum(count for code, count in seen.failed_codes.items() if code.startswith("uncoded"))
    ok = (
        seen.lost == seen.duplicated == seen.hung == uncoded == 0
        and not seen.failed_jobs
        and checks.get("a last job after the faults") == "succeeded"
        and checks.get("messages left unacknowledged") == "0"
        and checks.get("workers alive") == "2 of 2"
        and checks.get("traffic threads finished") == "yes"
    )
    kinds = Counter(fault.kind for fault in struck)
    overlapping = sum(
        any(o is not f and o.started_s is not None and f.started_s is not None
            and o.started_s <= f.started_s <= o.started_s + max(o.duration_s, 1.0) for o in struck)
        for f in struck
    )  # fmt: skip
    lines = [
        f"# Chaos: {args.minutes:g} minutes of overlapping faults (seed {args.seed})",
        "",
        f"`python bench/chaos.py --minutes {args.minutes:g} --seed {args.seed}`: {version.reference}, a Redis primary,"
        f" its replica and 3 Sentinels, two workers of one process each, {psutil.cpu_count()} cores; bulk jobs of"
        f" {args.bulk_texts:,} texts back to back and {args.clients} one-text clients (deadline {DEADLINE_S:g} s)."
        + (
            f" Workers on this host, so no {NETWORK_FAULT} ({no_network_why})."
            if no_network_why
            else " Each worker in a network namespace of its own, cut off by the cut-network faults."
        )
        + f" Replay this schedule with the same seed. Verdict: **{'PASS' if ok else 'FAIL'}**.",
        "",
        "| checker | value |",
        "| --- | ---: |",
        f"| faults struck (kinds) | {len(struck)} ({len(kinds)}: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        + ") |",
        f"| faults that struck while another was under way | {overlapping} |",
        f"| bulk jobs checked | {seen.bulk_jobs} ({seen.bulk_texts:,} texts) |",
        f"| inputs lost | **{seen.lost}** |",
        f"| inputs duplicated | **{seen.duplicated}** |",
        f"| jobs not succeeded or not exact | {len(seen.failed_jobs)} |",
        f"| submissions refused with a code (nothing handed out) | {sum(seen.refused_submissions.values())} "
        f"{dict(seen.refused_submissions) or ''} |",
        f"| jobs lost with a primary before a replica held them (their submission warned) | {seen.unheld_lost} |",
        f"| one-text requests answered | {seen.answered:,} |",
        f"| one-text requests failed with a code | {sum(seen.failed_codes.values())} {dict(seen.failed_codes) or ''} |",
        f"| one-text requests hung past {HUNG_AFTER_S:g} s | **{seen.hung}** |",
        *(f"| {name} | {value} |" for name, value in checks.items()),
        f"| wall time | {elapsed_s:,.0f} s |",
        "",
        "## The schedule",
        "",
        "| planned (s) | struck (s) | fault | worker | lasted (s) | note |",
        "| ---: | ---: | --- | ---: | ---: | --- |",
        *(
            f"| {f.at_s:.1f} | {'' if f.started_s is None else f'{f.started_s:.1f}'} | {f.kind} | "
            f"{f.slot if f.kind not in REDIS_FAULTS else ''} | {f.duration_s:.1f} | {f.note} |"
            for f in faults
        ),
        "",
        *(f"- job not exact: {line}" for line in seen.failed_jobs[:20]),
    ]
    return verdict(Path(args.report), lines, ok, scratch)


def verdict(report: Path, lines: list[str], ok: bool, scratch: Path) -> int:
    """Write and print the report; keep the run's logs and Redis data only to read a failure; the exit status."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {report}")
    if ok:  # the workers' logs and the servers' data (about 200 MB after 10 minutes) are kept only to read a failure
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"the workers' logs and the Redis servers' data are kept in {scratch}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
