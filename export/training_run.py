"""A training run end to end: fine-tune, export, gate, publish, and promote only a version at least as good.

    labelled rows -> fine_tune (best epoch kept) -> training curve PNG
                  -> export_checkpoint (parity gate; int8 gated on the validation split) -> new version
                  -> promote to production when its validation accuracy >= production's (or as told)

The same function runs in ``lepton train`` on this machine and in the ``lepton.train`` task on a
worker. Progress goes to ``on_progress``; ``should_stop`` is asked at every step and before the
version becomes visible, so a cancelled run publishes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.pipeline import Reporter
from export.publish import export_checkpoint
from lepton_runtime.constants import PRODUCTION_ALIAS, PROMOTION_METRIC
from lepton_runtime.errors import JobCancelledError, ModelNotFoundError
from lepton_runtime.inference.providers import cuda_provider_available
from lepton_runtime.jobs.schemas import TrainingOutcome, TrainingPhase, TrainingProgress, TrainRequest
from lepton_runtime.labelled_data import LabelledTexts, check_trainable
from lepton_runtime.registry import ModelRegistry, ModelVersion, validate_model_name
from lepton_runtime.training import TrainingConfig, default_base_model, fine_tune
from lepton_runtime.training.curve import CURVE_FILE, save_training_curve
from lepton_runtime.training.entities import EntityEpoch
from lepton_runtime.training.finetune import VALIDATION_FILE, EpochReport

# Progress is handed on at most this often during training (every step would flood Redis).
PROGRESS_INTERVAL_S = 1.0
# Phases a cancel no longer stops: the version is exported and, if the run was cancelled, withdrawn already.
PHASES_PAST_EXPORT: tuple[TrainingPhase, ...] = ("publishing", "done")


@dataclass
class RunTracker:
    """Turns training callbacks into throttled TrainingProgress reports, and cancels when told."""

    epochs: int
    on_progress: Callable[[TrainingProgress], None] | None
    should_stop: Callable[[], bool] | None
    started: float = field(default_factory=time.monotonic)
    progress: TrainingProgress = field(default_factory=TrainingProgress)
    _last_report: float = 0.0

    def __post_init__(self) -> None:
        self.progress.epochs = self.epochs

    def phase(self, phase: TrainingPhase) -> None:
        """Enter ``phase``; a cancel is honoured here until the export is done (after it, withdraw_if_cancelled)."""
        if phase not in PHASES_PAST_EXPORT:
            self.stop_if_asked()
        self.progress.phase = phase
        self._send(force=True)

    def step(self, step: int, total: int, loss: float) -> None:
        self.stop_if_asked()
        self.progress.phase, self.progress.step, self.progress.total_steps = "training", step, total
        self.progress.loss = round(loss, 5)
        self.progress.epoch = min(self.epochs, 1 + (step - 1) * self.epochs // max(1, total))
        elapsed_s = time.monotonic() - self.started
        self.progress.eta_s = round(elapsed_s / step * (total - step), 1) if step else None
        self._send(force=step == total)

    def epoch(self, report: EpochReport) -> None:
        self.progress.epoch = report.epoch
        self.progress.validation_accuracy = round(report.validation_accuracy, 4)
        self._send(force=True)

    def entity_epoch(self, report: EntityEpoch) -> None:
        self.progress.epoch = report.epoch
        self.progress.validation_f1 = round(report.validation_f1, 4)
        self._send(force=True)

    def stop_if_asked(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise JobCancelledError("the training run was cancelled; nothing was published")

    def _send(self, *, force: bool) -> None:
        now = time.monotonic()
        self.progress.elapsed_s = round(now - self.started, 1)
        if self.on_progress and (force or now - self._last_report >= PROGRESS_INTERVAL_S):
            self._last_report = now
            self.on_progress(self.progress.model_copy())


def train_and_publish(
    train: LabelledTexts,
    request: TrainRequest,
    *,
    registry: ModelRegistry,
    checkpoint_dir: Path,
    run_id: str,
    validation: LabelledTexts | None = None,
    on_progress: Callable[[TrainingProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    report: Reporter = lambda message: None,
) -> TrainingOutcome:
    """Fine-tune ``request.base`` on ``train``, publish the result as ``request.name`` and promote it by the rule."""
    validate_model_name(request.name)
    check_trainable(train)
    if validation is not None:
        check_trainable(validation, what="validation data")
    base = Path(request.base) if request.base else default_base_model()
    if not (base / "config.json").is_file():
        raise ModelNotFoundError(
            f"base checkpoint {base} has no config.json; give a Hugging Face checkpoint directory with --base, "
            "or leave it out for MiniLM-L6"
        )
    tracker = RunTracker(request.epochs, on_progress, should_stop)
    tracker.phase("loading")
    checkpoint = checkpoint_dir / request.name / run_id
    checkpoint.mkdir(parents=True, exist_ok=True)
    config = TrainingConfig(
        epochs=request.epochs,
        learning_rate=request.learning_rate,
        batch_size=request.batch_size,
        max_length=request.max_length,
        seed=request.seed,
    )
    report(f"fine-tuning {base} on {len(train)} rows (at most {request.epochs} epochs) -> {checkpoint}")
    result = fine_tune(
        train, base, checkpoint, config, validation=validation, on_step=tracker.step, on_epoch=tracker.epoch
    )
    curve = save_training_curve(
        result.epochs,
        checkpoint / CURVE_FILE,
        title=f"{request.name}: {Path(request.source).name}, best epoch {result.best_epoch} "
        f"(validation accuracy {result.validation_accuracy:.3f})",
        best_epoch=result.best_epoch,
    )
    report(f"validation accuracy {result.validation_accuracy:.4f} (epoch {result.best_epoch}); curve {curve}")
    tracker.phase("exporting")
    version, variants_note = _export(checkpoint, registry, request.name, report)
    withdraw_if_cancelled(registry, version, should_stop)
    tracker.phase("publishing")
    promoted, why = decide_promotion(registry, version, request.promote)
    if promoted:
        registry.promote(version.reference, PRODUCTION_ALIAS)
    report(f"{version.reference}: {why}")
    tracker.phase("done")
    return TrainingOutcome(
        version=version.reference,
        metrics={k: v for k, v in version.manifest.metrics.items() if k not in {"per_class", "epochs"}},
        promoted=promoted,
        promotion=why + variants_note,
        checkpoint=str(checkpoint),
        curve=str(curve),
        variants=sorted(version.manifest.variants),
    )


# The rows a run carries (``{"text", "label"}`` for a classifier, ``{"tokens", "tags"}`` for an entity model)
TrainingRows = Iterable[dict[str, Any]]


@dataclass(frozen=True)
class QueuedRun:
    """Where a training run publishes and keeps its checkpoint, its id, and how it reports progress and hears a cancel:
    a run from the training queue, or `lepton train` here (the same path)."""

    registry: ModelRegistry
    checkpoint_dir: Path
    run_id: str
    on_progress: Callable[[TrainingProgress], None] | None = None
    should_stop: Callable[[], bool] | None = None
    report: Reporter = lambda message: None  # what a person follows (`lepton train` prints it)


def train_queued_classifier(
    train_rows: TrainingRows,
    validation_rows: TrainingRows,
    request: TrainRequest,
    run: QueuedRun,
) -> TrainingOutcome:
    """A classifier run from the training queue: its rows (``{"text", "label"}``), checked as a local run's."""

    def labelled(rows: list[dict[str, Any]], source: str | None) -> LabelledTexts:
        return LabelledTexts([row["text"] for row in rows], [row["label"] for row in rows], source or "<rows>")

    validation = list(validation_rows)
    return train_and_publish(
        labelled(list(train_rows), request.source), request, registry=run.registry, checkpoint_dir=run.checkpoint_dir,
        run_id=run.run_id, validation=labelled(validation, request.validation_source) if validation else None,
        on_progress=run.on_progress, should_stop=run.should_stop, report=run.report,
    )  # fmt: skip


def withdraw_if_cancelled(
    registry: ModelRegistry, version: ModelVersion, should_stop: Callable[[], bool] | None
) -> None:
    """After an export (too late to stop, not too late to withdraw): a run cancelled meanwhile deletes the version
    it exported before anything promotes it, and ends cancelled."""
    if should_stop is not None and should_stop():
        registry.delete(version.reference, force=True)
        raise JobCancelledError(f"the training run was cancelled; {version.reference} was withdrawn")


def _export(checkpoint: Path, registry: ModelRegistry, name: str, report: Reporter) -> tuple[ModelVersion, str]:
    """fp32, int8 (gated on the run's validation split) and, where ONNX Runtime has CUDA, fp16 (gated
    on the GPU); a variant that fails its gate is left out and the rest published (one export, the one policy)."""
    variants = ["fp32", "int8", *(["fp16"] if cuda_provider_available() else [])]
    version = export_checkpoint(
        checkpoint, registry, name, variants=variants, golden=checkpoint / VALIDATION_FILE, best_effort=True,
        report=report,
    )  # fmt: skip
    left_out = version.manifest.metrics.get("variants_left_out", [])
    return version, "".join(f"; {note}" for note in left_out)


def decide_promotion(
    registry: ModelRegistry, version: ModelVersion, policy: str, *, metric: str = PROMOTION_METRIC
) -> tuple[bool, str]:
    """Whether ``version`` goes to production under ``policy`` (auto | always | never; auto compares ``metric``
    with production's), and why."""
    if policy == "never":
        return False, "not promoted (--promote never)"
    if policy == "always":
        return True, f"promoted to {PRODUCTION_ALIAS} (--promote always)"
    new = version.manifest.metrics.get(metric)
    try:
        current = registry.resolve(f"{version.name}@{PRODUCTION_ALIAS}")
    except ModelNotFoundError:
        return True, f"promoted to {PRODUCTION_ALIAS}: the first {version.name} in production"
    old = current.manifest.metrics.get(metric)
    if new is None or old is None:
        return False, (
            f"not promoted: {metric} is unknown for {version.reference if new is None else current.reference}"
            f"; promote by hand (`lepton models promote {version.reference}`) or train with --promote always"
        )
    if new >= old:
        return True, f"promoted to {PRODUCTION_ALIAS}: {metric} {new:.4f} >= {old:.4f} of {current.reference}"
    return False, f"not promoted: {metric} {new:.4f} < {old:.4f} of {current.reference} in {PRODUCTION_ALIAS}"
