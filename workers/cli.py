"""Commands the workers package owns: ``lepton worker``, ``up``, ``flower``, ``dlq`` and ``demo``."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.table import Table

from lepton_runtime.constants import (
    EMBEDDED_REDIS_PORT,
    INFERENCE_QUEUE,
    KNOWN_QUEUES,
    PRODUCTION_ALIAS,
    TRAINING_QUEUE,
)
from lepton_runtime.errors import ProviderUnavailableError
from lepton_runtime.exposure import is_loopback
from lepton_runtime.jobs import DeadLetterStore, JobStore, broker_errors, connect_with
from lepton_runtime.jobs.audit import record_command
from lepton_runtime.registry import ModelRegistry, open_registry
from lepton_runtime.settings import LeptonSettings, load_settings

console = Console()
err_console = Console(stderr=True)


@click.command()
@click.option(
    "-Q",
    "--queues",
    default=INFERENCE_QUEUE,
    show_default=True,
    help=f"Comma-separated queues to consume: {INFERENCE_QUEUE}, {TRAINING_QUEUE} (fine-tuning; one process, "
    "a visibility timeout above LEPTON_TRAIN_TIME_LIMIT_S).",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1),
    default=None,
    help="Worker processes. Default: one per core on CPU (each with 1 thread), 1 on CUDA or for training.",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="ONNX Runtime threads per process. Default: cores / processes, so threads x processes <= cores.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default=None,
    help="cpu, or cuda (refuses to start unless the CUDA provider really runs). Default: LEPTON_DEVICE.",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="prefork: processes with time limits; a killed one is replaced and its task given back at once. "
    "solo: one process, about 1.5 ms faster per one-text request here (bench/queue.py), but no time limits, "
    "and a crash takes the worker down until it is restarted.",
)
@click.option(
    "--warm",
    multiple=True,
    metavar="REF",
    help="Model to load before the first task (repeatable). Default: every model's production alias.",
)
@click.option("-n", "--name", default=None, help="Worker name (default lepton-<pid>@<host>).")
@click.option("--include", multiple=True, metavar="MODULE", help="Extra module with tasks to import (repeatable).")
@click.option(
    "--max-memory-mb",
    type=click.IntRange(64),
    default=None,
    help="Replace a process after a task once its resident memory passes this.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics of every pool process on this port (/metrics). Default: off.",
)
@click.option(
    "--metrics-address",
    default="127.0.0.1",
    show_default=True,
    help="Interface for --metrics-port; beyond loopback scrapers need a token from LEPTON_API_TOKENS.",
)
@click.option("-l", "--loglevel", default="info", show_default=True)
def worker(
    queues: str,
    concurrency: int | None,
    threads: int | None,
    device: str | None,
    pool: str,
    warm: tuple[str, ...],
    name: str | None,
    include: tuple[str, ...],
    max_memory_mb: int | None,
    metrics_port: int | None,
    metrics_address: str,
    loglevel: str,
) -> None:
    """Run a Celery worker for Lepton tasks (lepton.classify, lepton.bulk.chunk; lepton.train on the training queue).

    Messages are acknowledged after the task, given back if the worker dies, and dead-lettered
    after LEPTON_MAX_DELIVERIES starts that never finished. Models are loaded and warmed in each
    process after the fork, before the first task.

    \b
    Examples:
      lepton worker                          # CPU, one process per core
      lepton worker --device cuda -c 1       # one GPU process, refuses to start without CUDA
      lepton worker -Q lepton.training       # fine-tuning runs (PyTorch; CUDA when present)
    """
    from workers import runtime
    from workers.app import create_app

    settings = load_settings()
    if metrics_port is not None:  # before anything imports prometheus_client, in this process or its children
        from lepton_runtime.monitoring.server import MULTIPROC_DIR_VARIABLE, use_multiprocess_dir

        use_multiprocess_dir(
            os.environ.get(MULTIPROC_DIR_VARIABLE) or tempfile.mkdtemp(prefix=f"lepton-metrics-{os.getpid()}-")
        )
    consumed = [queue.strip() for queue in queues.split(",") if queue.strip()]
    unknown = sorted(set(consumed) - set(KNOWN_QUEUES))
    if unknown or not consumed:
        raise click.BadParameter(f"{unknown or queues!r}: the queues are {', '.join(KNOWN_QUEUES)}", param_hint="-Q")
    training_only = consumed == [TRAINING_QUEUE]
    chosen_device = device or settings.device
    processes, threads_per_process = pool_shape_for(
        chosen_device, concurrency or (1 if training_only else None), threads or settings.intra_op_threads
    )
    if threads_per_process == 1:
        # one core per process: the Rust tokenizer's own thread pool would take cores from the other processes,
        # and waiting for its threads to be scheduled shows up as request latency
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warm_models = list(warm) or ([] if training_only else production_models(open_registry(settings)))
    if chosen_device == "cuda":
        check_cuda(settings, warm_models, training=TRAINING_QUEUE in consumed, inference=INFERENCE_QUEUE in consumed)
    worker_name = name or f"lepton-{os.getpid()}@{socket.gethostname()}"
    runtime.configure(
        settings,
        runtime.WorkerOptions(
            name=worker_name,
            pool=cast(runtime.PoolKind, pool),
            device=cast(runtime.Device, chosen_device),
            intra_op_threads=threads_per_process,
            warm=warm_models,
            metrics=metrics_port is not None,
            interactive=INFERENCE_QUEUE in consumed,
        ),
    )
    app = create_app(settings, include=include, consumes=consumed)
    from workers.sweeper import install_sweeper

    install_sweeper(app, settings, worker_name)  # chunks and training runs whose message was lost are sent again
    if metrics_port is not None:
        from lepton_runtime.monitoring.server import serve_metrics

        serve_metrics(settings, metrics_address, metrics_port)
        err_console.print(f"metrics on http://{metrics_address}:{metrics_port}/metrics")
    argv = [
        "worker", "-Q", queues, "-c", str(processes), "-P", pool, "-n", worker_name, "-l", loglevel,
        "-E", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    if max_memory_mb:
        argv += ["--max-memory-per-child", str(max_memory_mb * 1024)]
    err_console.print(
        f"[bold]lepton worker[/bold] {worker_name}: {processes} x {threads_per_process} threads on {chosen_device}, "
        f"queues {queues}, warming {', '.join(warm_models) or 'nothing'}"
    )
    app.worker_main(argv)


def pool_shape_for(device: str, concurrency: int | None, threads: int | None) -> tuple[int, int]:
    from workers.runtime import pool_shape

    return pool_shape(device, concurrency, threads or None)


def production_models(registry: ModelRegistry) -> list[str]:
    """``name@production`` of every model that has that alias."""
    return [
        f"{name}@{PRODUCTION_ALIAS}" for name in registry.list_models() if PRODUCTION_ALIAS in registry.aliases(name)
    ]


def check_cuda(settings: LeptonSettings, warm_models: list[str], *, training: bool, inference: bool) -> None:
    """Refuse to start unless ONNX Runtime has the CUDA provider and really runs a model on it (inference),
    and PyTorch sees a GPU (training).

    The probes run in a spawned process: the worker's parent must never create a CUDA context,
    or the forked pool processes inherit a broken one.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from workers.probe import probe_provider, probe_torch_cuda

    if training:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            err_console.print(f"training on {pool.submit(probe_torch_cuda).result()}")
    if not inference:
        return
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise ProviderUnavailableError(
            f"asked for --device cuda, but the available execution providers are {available}; install "
            "onnxruntime-gpu (not onnxruntime) matching this machine's CUDA, or run with --device cpu"
        )
    if not warm_models:
        err_console.print("[yellow]no model to warm: the CUDA check stops at the provider list[/yellow]")
        return
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(probe_provider, settings, warm_models[0], "cuda").result()


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=int, default=5555, show_default=True)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(address: str, port: int, flower_args: tuple[str, ...]) -> None:
    """Run Flower (the Celery dashboard) on the app's broker; extra arguments go to Flower.

    Bound to loopback it needs no password; bound anywhere else it refuses to start unless
    LEPTON_FLOWER_BASIC_AUTH (user:password) is set. Its /metrics answers only with that password too.
    Tasks show their arguments cut short (the first text and a count); a failed bulk chunk's id names
    its job: `lepton jobs retry ID` with the id Flower shows.
    """
    settings = load_settings()
    env = dict(os.environ)
    if settings.flower_basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()  # not on the command line
    elif not is_loopback(address):
        raise click.UsageError(
            f"Flower on {address} would be reachable without a password; set LEPTON_FLOWER_BASIC_AUTH=user:password "
            "or bind to 127.0.0.1"
        )
    command = [
        sys.executable, "-m", "workers.flower_launch", "--app", "workers.celery:app", "flower",
        f"--address={address}", f"--port={port}", *flower_args,
    ]  # fmt: skip
    os.execve(sys.executable, command, env)


@click.command()
@click.option("-c", "--concurrency", type=click.IntRange(1), default=None, help="Worker processes (default: per core).")
@click.option("--flower/--no-flower", default=True, show_default=True, help="Start Flower on loopback too.")
@click.option("--flower-port", type=int, default=5555, show_default=True)
@click.option(
    "--trainer/--no-trainer",
    default=True,
    show_default=True,
    help="Also start a training worker (lepton.training, one process) for `lepton train --submit`.",
)
@click.option(
    "--redis-port",
    type=int,
    default=EMBEDDED_REDIS_PORT,
    show_default=True,
    help="Port of the local Redis (only when neither LEPTON_REDIS_URL nor LEPTON_REDIS_SENTINELS is set).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".lepton"),
    show_default=True,
    help="Where the local Redis keeps its append-only file, and the logs.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve the inference worker's Prometheus metrics on 127.0.0.1:PORT/metrics. Default: off.",
)
def up(
    concurrency: int | None,
    flower: bool,
    flower_port: int,
    trainer: bool,
    redis_port: int,
    data_dir: Path,
    metrics_port: int | None,
) -> None:
    """Start the embedded default: a local Redis on loopback (unless LEPTON_REDIS_URL or
    LEPTON_REDIS_SENTINELS names one), an inference worker, a training worker and Flower. Ctrl-C
    stops them cleanly: the workers finish their tasks, Redis saves.

    One fleet per --data-dir: a second one there is refused, with the command of a separate fleet.

    \b
    Then, in another shell of this folder (`make demo` published intents):
      lepton classify "my card payment was declined" --model intents
      lepton submit lepton_runtime/datasets/banking77/dev.jsonl --model intents --out labels.jsonl
      lepton jobs list
      lepton train lepton_runtime/datasets/banking77/dev.jsonl --name intents-head --method head
    """
    from workers.fleet import Fleet, FleetOptions

    settings = load_settings()
    processes, _ = pool_shape_for(settings.device, concurrency, settings.intra_op_threads)
    configured = settings if settings.broker_configured else None
    options = FleetOptions(data_dir, redis_port, processes, flower, flower_port, trainer, metrics_port=metrics_port)
    fleet = Fleet(options, configured)
    # Ctrl-C and SIGTERM stop everything, even when started with SIGINT ignored (a shell's background job)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with broker_errors(settings.broker_url):
            fleet.start(report=lambda line: console.print(line, highlight=False))
        console.print("[bold green]lepton up: ready[/bold green] (Ctrl-C stops everything)", highlight=False)
        sys.stdout.flush()
        exited = fleet.wait()
        err_console.print(f"[red]{exited} exited by itself; stopping the rest[/red]")
    except KeyboardInterrupt:
        console.print("stopping: workers (warm shutdown), flower, redis")
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    finally:
        fleet.stop()
    console.print("lepton up: stopped")


def _raise_keyboard_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


@click.group()
def dlq() -> None:
    """Dead letters: tasks that failed for good (worker lost too often, bug, corrupt model...)."""


@dlq.command("list")
@click.option("--queue", default=None, help="Only this queue (default: all).")
@click.option("--tenant", default=None, help="Only this tenant's (default: every tenant's).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, tracebacks included.")
def dlq_list(queue: str | None, tenant: str | None, as_json: bool) -> None:
    """List dead letters, oldest first: task, id, tenant, error code, message, attempts, first and last seen."""
    settings = load_settings()
    with broker_errors(settings.broker_url):
        letters = DeadLetterStore(connect_with(settings)).list(queue, tenant=tenant)
    if as_json:
        for letter in letters:
            click.echo(letter.model_dump_json())
        return
    table = Table("id", "tenant", "queue", "task", "code", "attempts", "message", title=f"{len(letters)} dead letters")
    for letter in letters:
        row = (letter.id, letter.tenant, letter.queue, letter.task, letter.code, str(letter.attempts))
        table.add_row(*row, letter.message[:80])
    console.print(table)


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter (of --queue, if given).")
@click.option("--queue", default=None)
def dlq_replay(ids: tuple[str, ...], replay_all: bool, queue: str | None) -> None:
    """Send dead-lettered tasks again (a bulk chunk rejoins its job); each leaves the dead letters."""
    from lepton_runtime.jobs.sending import replay_dead_letter as replay
    from workers.app import create_app

    if not ids and not replay_all:
        raise click.UsageError("give dead-letter IDs (see `lepton dlq list`) or --all")
    settings = load_settings()
    with broker_errors(settings.broker_url):
        client = connect_with(settings)
        letters = DeadLetterStore(client, ttl_s=settings.job_ttl_s)
        jobs = JobStore(client, ttl_s=settings.job_ttl_s)
        app = create_app(settings)
        targets = list(ids) or [letter.id for letter in letters.list(queue)]
        for letter_id in targets:
            letter = replay(letter_id, letters, jobs, app)
            record_command(settings, "replay", letter.id, f"{letter.task} [{letter.code}] of tenant {letter.tenant}")
            console.print(f"replayed {letter.task} {letter.id} ({letter.code})")
    console.print(json.dumps({"replayed": len(targets)}))
