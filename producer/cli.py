"""Commands the producer package owns: ``lepton submit`` and ``lepton jobs status|results|retry|cancel|list``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lepton_runtime.constants import MAX_CHUNK_SIZE
from lepton_runtime.jobs import JobStatus
from producer.client import LeptonClient

console = Console(stderr=True)


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--model", required=True, help="Model reference: name, name@version or name@alias.")
@click.option(
    "-o",
    "--out",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the results here (JSON lines, input order). Default: SOURCE.predictions.jsonl.",
)
@click.option("--text-field", default="text", show_default=True, help="JSONL field or CSV column with the text.")
@click.option("--id-field", default="id", show_default=True, help="Field or column with an id (else the line number).")
@click.option(
    "--chunk-size", type=click.IntRange(1, MAX_CHUNK_SIZE), default=None, help="Texts per chunk (LEPTON_CHUNK_SIZE)."
)
@click.option("--idempotency-key", default=None, help="Submitting again with the same key returns the same job.")
@click.option("--no-wait", is_flag=True, help="Print the job id and return; follow it with `lepton jobs status`.")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Stop waiting after this many seconds.")
def submit(
    source: Path,
    model: str,
    output: Path | None,
    text_field: str,
    id_field: str,
    chunk_size: int | None,
    idempotency_key: str | None,
    no_wait: bool,
    timeout_s: float | None,
) -> None:
    """Classify every text of SOURCE (JSONL, CSV or plain lines) as a bulk job on the queue.

    Shows a progress bar and the final throughput; the job survives this command (Ctrl-C only
    stops waiting) and worker crashes. The job id is printed on stdout.

    \b
    Example:
      lepton submit reviews.jsonl --model sentiment --out labels.jsonl
    """
    output = output or source.with_name(source.stem + ".predictions.jsonl")
    with LeptonClient() as client:
        job = client.submit_bulk(
            source, model=model, output=output, chunk_size=chunk_size, text_field=text_field,
            id_field=id_field, idempotency_key=idempotency_key,
        )  # fmt: skip
        click.echo(job.id)
        first = job.status()
        note = "" if job.created else " (existing job for this idempotency key)"
        console.print(
            f"job {job.id}{note}: {first.total_texts} texts in {first.total_chunks} chunks, {first.model_version}"
        )
        if no_wait:
            return
        status = _follow(job.wait, first, timeout_s)
        _summary(status, output)
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
        bar = progress.add_task("classifying", total=first.total_texts, rate="")

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
    for failure in status.failures:
        console.print(f"  chunk {failure.chunk}: [{failure.code}] {failure.message}")
    if status.failed_chunks:
        console.print(f"re-run only the failed chunks with `lepton jobs retry {status.id}`")


@click.group()
def jobs() -> None:
    """Follow bulk jobs: status, results, retry (failed chunks only), cancel, list."""


@jobs.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
def jobs_status(job_id: str, as_json: bool) -> None:
    """State, progress (done/total, texts per second, ETA) and failed chunks of a job."""
    with LeptonClient() as client:
        status = client.status(job_id)
    if as_json:
        click.echo(status.model_dump_json(indent=2))
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
    help="Write to this file (atomically) instead of stdout.",
)
def jobs_results(job_id: str, output: Path | None) -> None:
    """The output of a finished job as JSON lines, in input order."""
    with LeptonClient() as client:
        if output is not None:
            rows = client.write_results(job_id, output)
            console.print(f"{rows} rows -> {output}")
            return
        for line in client.jobs.results(job_id):
            click.echo(line)


@jobs.command("retry")
@click.argument("job_id")
def jobs_retry(job_id: str) -> None:
    """Run the failed chunks of a job again (and only those), and send any its producer never sent."""
    with LeptonClient() as client:
        chunks = client.retry(job_id)
    if chunks:
        click.echo(f"requeued {len(chunks)} chunks of {job_id} (failed, or never sent): {chunks}")
    else:
        click.echo(f"{job_id}: no failed chunk")


@jobs.command("cancel")
@click.argument("job_id")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job for good: no worker starts another of its chunks, even after a restart."""
    with LeptonClient() as client:
        status = client.cancel(job_id)
    click.echo(f"{job_id}: {status.state}")


@jobs.command("list")
@click.option("-n", "--limit", type=click.IntRange(1), default=20, show_default=True)
def jobs_list(limit: int) -> None:
    """The most recent jobs, newest first."""
    with LeptonClient() as client:
        statuses = client.list_jobs(limit)
    table = Table()
    table.add_column("id", no_wrap=True, min_width=32)  # copied into other commands: never cut
    for name in ("state", "model", "texts", "done", "failed chunks", "source"):
        table.add_column(name, overflow="fold")
    for status in statuses:
        table.add_row(
            status.id,
            status.state,
            status.model_version,
            str(status.total_texts),
            str(status.done_texts),
            str(status.failed_chunks),
            status.source,
        )
    Console().print(table)
