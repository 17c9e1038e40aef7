"""The demo job end to end: fine-tune MiniLM on real sentences, export, gate, publish, then classify and time it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lepton_runtime.errors import ModelNotFoundError
from lepton_runtime.inference import Engine, Prediction
from lepton_runtime.labelled_data import LabelledTexts, read_labelled
from lepton_runtime.registry import ModelRegistry, ModelVersion

DEMO_MODEL = "sentiment"
# The SST-2 development sentences that sit beside a checkout (../shared/datasets).
DEFAULT_DEMO_DATA = Path("../shared/datasets/sst2/dev.jsonl")


@dataclass
class DemoReport:
    version: ModelVersion
    trained_now: bool
    texts: int
    accuracy: float | None
    texts_per_s: float
    samples: list[tuple[str, Prediction]]
    engine: Engine


def ensure_model(
    registry: ModelRegistry,
    data: Path,
    work_dir: Path,
    epochs: int,
    on_step: Callable[[int, int, float], None] | None,
    report: Callable[[str], None],
) -> tuple[ModelVersion, bool]:
    """Return the production demo model, fine-tuning and publishing it first if there is none."""
    try:
        return registry.resolve(f"{DEMO_MODEL}@production"), False
    except ModelNotFoundError:
        pass
    from export.publish import export_checkpoint
    from lepton_runtime.training import TrainingConfig, default_base_model, fine_tune
    from lepton_runtime.training.finetune import VALIDATION_FILE

    checkpoint = work_dir / "checkpoint"
    report(f"fine-tuning MiniLM-L6 on {data} ({epochs} epochs, 80/20 split)")
    result = fine_tune(
        read_labelled(data, require_labels=True),
        default_base_model(),
        checkpoint,
        TrainingConfig(epochs=epochs),
        on_step=on_step,
    )
    report(f"validation accuracy {result.validation_accuracy:.3f} after {result.seconds:.0f} s; exporting")
    version = export_checkpoint(
        checkpoint, registry, DEMO_MODEL, golden=checkpoint / VALIDATION_FILE, promote="production", report=report
    )
    return version, True


def classify_and_time(version: ModelVersion, texts: LabelledTexts, threads: int) -> DemoReport:
    """Classify every text with the production model and measure texts per second (median of 3 passes)."""
    engine = Engine(version.path, intra_op_threads=threads)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        predictions = engine.classify(texts.texts)
        timings.append(time.perf_counter() - started)
    from export.quality import accuracy

    held_out_accuracy = accuracy([p.label for p in predictions], texts.labels) if texts.labels else None
    samples = list(zip(texts.texts[:6], predictions[:6], strict=True))
    return DemoReport(version, False, len(texts), held_out_accuracy, len(texts) / sorted(timings)[1], samples, engine)
