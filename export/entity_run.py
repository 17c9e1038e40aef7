"""A training run of an entity model end to end: fine-tune a token classifier, export it (parity gate), score the
served model on raw text, publish, and promote only a version at least as good.

    tagged sentences -> fine_tune_entities (best epoch by entity F1) -> export_checkpoint(token-classification)
                     -> the Engine on the validation texts: entity F1 on character spans -> promote by the rule

Two F1 figures are recorded: ``validation_entity_f1`` (seqeval on CoNLL's words, the usual score) and
``validation_span_f1`` (the published Engine on the raw validation texts, spans against the gold character
spans: what a user of ``entities()`` gets).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from export.publish import Reporter, export_checkpoint
from export.training_run import decide_promotion
from lepton_runtime.constants import PRODUCTION_ALIAS
from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs.schemas import TrainingOutcome
from lepton_runtime.registry import ModelRegistry, validate_model_name
from lepton_runtime.task_names import TOKEN_CLASSIFICATION
from lepton_runtime.training import TrainingConfig, default_base_model
from lepton_runtime.training.entities import OUTSIDE, EntityEpoch, TaggedSentences, fine_tune_entities

# The figure that decides promotion of an entity model.
ENTITY_PROMOTION_METRIC = "validation_entity_f1"


def train_and_publish_entities(
    train: TaggedSentences,
    validation: TaggedSentences,
    *,
    name: str,
    config: TrainingConfig,
    registry: ModelRegistry,
    checkpoint: Path,
    base: Path | None = None,
    promote: str = "auto",
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EntityEpoch], None] | None = None,
    report: Reporter = lambda message: None,
) -> TrainingOutcome:
    """Fine-tune ``base`` (MiniLM-L6 by default) on ``train``, publish it as ``name`` and promote it by the rule."""
    validate_model_name(name)
    base = base or default_base_model()
    checkpoint.mkdir(parents=True, exist_ok=True)
    report(f"fine-tuning {base} as a token classifier on {len(train)} sentences -> {checkpoint}")
    result = fine_tune_entities(
        train, base, checkpoint, config, validation=validation, on_step=on_step, on_epoch=on_epoch
    )
    per_type = ", ".join(f"{kind} {figures['f1']:.3f}" for kind, figures in sorted(result.per_type.items()))
    report(f"validation entity F1 {result.validation_f1:.4f} (epoch {result.best_epoch}; {per_type})")
    version = export_checkpoint(
        checkpoint, registry, name, task=TOKEN_CLASSIFICATION, variants=["fp32"],
        max_sequence_length=config.max_length, report=report,
    )  # fmt: skip
    span_f1 = span_f1_of(Engine(version.path), validation)
    report(f"{version.reference} on raw validation text: span F1 {span_f1['f1']:.4f}")
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


def gold_text_and_spans(words: list[str], tags: list[str]) -> tuple[str, set[tuple[int, int, str]]]:
    """The sentence as its words joined by single spaces, and its gold entities as character spans."""
    text, spans, position = " ".join(words), set(), 0
    open_entity: list[Any] | None = None
    for word, tag in zip(words, tags, strict=True):
        start, end = position, position + len(word)
        position = end + 1
        if tag != OUTSIDE and tag.startswith("I-") and open_entity and open_entity[2] == tag[2:]:
            open_entity[1] = end
            continue
        if open_entity:
            spans.add((open_entity[0], open_entity[1], open_entity[2]))
        open_entity = [start, end, tag[2:]] if tag != OUTSIDE else None
    if open_entity:
        spans.add((open_entity[0], open_entity[1], open_entity[2]))
    return text, spans


def span_f1_of(engine: Engine, data: TaggedSentences) -> dict[str, float]:
    """Micro precision, recall and F1 of ``engine.entities`` on the raw sentences: exact character span and type."""
    texts, gold = [], []
    for words, tags in zip(data.words, data.tags, strict=True):
        text, spans = gold_text_and_spans(words, tags)
        texts.append(text)
        gold.append(spans)
    found = engine.entities(texts)
    predicted = [{(e.start, e.end, e.label) for e in entities} for entities in found]
    matched = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    precision = matched / max(1, sum(len(p) for p in predicted))
    recall = matched / max(1, sum(len(g) for g in gold))
    f1 = 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
