"""A training run of an entity model end to end: fine-tune a token classifier, export it (parity gate), score the
served model on raw text, publish, and promote only a version at least as good.

    tagged sentences -> fine_tune_entities (best epoch by entity F1) -> export_checkpoint(token-classification)
                     -> the Engine on the validation texts: entity F1 on character spans -> promote by the rule

Two F1 figures are recorded: ``validation_entity_f1`` (seqeval on CoNLL's words, the usual score) and
``validation_span_f1`` (the published Engine on the raw validation texts, spans against the gold character
spans: what a user of ``entities()`` gets).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from export.entities import span_f1_of
from export.pipeline import Reporter
from export.publish import export_checkpoint
from export.training_run import QueuedRun, RunTracker, TrainingRows, decide_promotion, withdraw_if_cancelled
from lepton_runtime.constants import PRODUCTION_ALIAS
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs.schemas import TrainingOutcome, TrainingPhase, TrainRequest
from lepton_runtime.labelled_data import TaggedSentences, read_tagged
from lepton_runtime.registry import ModelRegistry, validate_model_name
from lepton_runtime.task_names import TOKEN_CLASSIFICATION
from lepton_runtime.training import TrainingConfig, default_base_model
from lepton_runtime.training.entities import EntityEpoch, fine_tune_entities

# The figure that decides promotion of an entity model.
ENTITY_PROMOTION_METRIC = "validation_entity_f1"
TRAIN_ROWS_FILE = "train.jsonl"
VALIDATION_ROWS_FILE = "validation.jsonl"


def train_and_publish_entities(
    train: TaggedSentences,
    validation: TaggedSentences,
    *,
    name: str,
    config: TrainingConfig,
    registry: ModelRegistry,
    checkpoint: Path,
    base: Path | None = None,
    golden: Path | None = None,
    promote: str = "auto",
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EntityEpoch], None] | None = None,
    on_phase: Callable[[TrainingPhase], None] = lambda phase: None,
    should_stop: Callable[[], bool] | None = None,
    report: Reporter = lambda message: None,
) -> TrainingOutcome:
    """Fine-tune ``base`` (MiniLM-L6 by default) on ``train``, publish it as ``name`` (with int8 when it passes
    its entity gate on ``golden``, a labelled file: the validation file) and promote it by the rule. ``on_phase``
    hears "exporting" and "publishing"; a run that ``should_stop`` after its export withdraws the version."""
    validate_model_name(name)
    base = base or default_base_model()
    checkpoint.mkdir(parents=True, exist_ok=True)
    report(f"fine-tuning {base} as a token classifier on {len(train)} sentences -> {checkpoint}")
    result = fine_tune_entities(
        train, base, checkpoint, config, validation=validation, on_step=on_step, on_epoch=on_epoch
    )
    per_type = ", ".join(f"{kind} {figures['f1']:.3f}" for kind, figures in sorted(result.per_type.items()))
    report(f"validation entity F1 {result.validation_f1:.4f} (epoch {result.best_epoch}; {per_type})")
    on_phase("exporting")
    variants = ["fp32", "int8"] if golden else ["fp32"]
    version = export_checkpoint(
        checkpoint, registry, name, task=TOKEN_CLASSIFICATION, variants=variants, golden=golden,
        max_sequence_length=config.max_length, best_effort=True, report=report,
    )  # fmt: skip
    span_f1 = span_f1_of(Engine(version.path), validation)
    report(f"{version.reference} on raw validation text: span F1 {span_f1['f1']:.4f}")
    withdraw_if_cancelled(registry, version, should_stop)
    on_phase("publishing")
    promoted, why = decide_promotion(registry, version, promote, metric=ENTITY_PROMOTION_METRIC)
    if promoted:
        registry.promote(version.reference, PRODUCTION_ALIAS)
    report(f"{version.reference}: {why}")
    return TrainingOutcome(
        version=version.reference,
        metrics={**result.metrics(), "validation_span": span_f1},
        promoted=promoted,
        promotion=why,
        checkpoint=str(checkpoint),
        variants=sorted(version.manifest.variants),
    )


def train_queued_entities(
    train_rows: TrainingRows,
    validation_rows: TrainingRows,
    request: TrainRequest,
    run: QueuedRun,
) -> TrainingOutcome:
    """An entity run from its rows (``{"tokens", "tags"}``): they are written beside the checkpoint and read back
    with the reader's checks (the validation file is the int8 gate's golden file); progress, phases and cancel as
    for a classifier."""
    tracker = RunTracker(request.epochs, run.on_progress, run.should_stop)
    tracker.phase("loading")
    checkpoint = run.checkpoint_dir / request.name / run.run_id
    checkpoint.mkdir(parents=True, exist_ok=True)
    files = {}
    for file_name, rows in ((TRAIN_ROWS_FILE, train_rows), (VALIDATION_ROWS_FILE, validation_rows)):
        files[file_name] = checkpoint / file_name
        with files[file_name].open("w", encoding="utf-8") as stream:
            stream.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    config = TrainingConfig(
        epochs=request.epochs, learning_rate=request.learning_rate, batch_size=request.batch_size,
        max_length=request.max_length, seed=request.seed,
    )  # fmt: skip
    outcome = train_and_publish_entities(
        read_tagged(files[TRAIN_ROWS_FILE]), read_tagged(files[VALIDATION_ROWS_FILE]), name=request.name,
        config=config, registry=run.registry, checkpoint=checkpoint, base=Path(request.base) if request.base else None,
        golden=files[VALIDATION_ROWS_FILE], promote=request.promote, on_step=tracker.step,
        on_epoch=tracker.entity_epoch, on_phase=tracker.phase, should_stop=run.should_stop, report=run.report,
    )  # fmt: skip
    tracker.phase("done")
    return outcome
