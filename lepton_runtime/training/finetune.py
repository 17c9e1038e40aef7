"""Fine-tuning of a Hugging Face encoder as a sequence classifier with PyTorch (imported lazily).

A sentence-transformers base (all-MiniLM-L6-v2, the default) gets its head on the mean-pooled embedding it was
trained for, started from a linear probe (lepton_runtime/training/pooled.py); any other base gets the
``[CLS]`` pooler head of ``AutoModelForSequenceClassification``.

The loop itself (device, mixed precision, batches, AdamW, clipping, early stopping, the best epoch) is the one of
``lepton_runtime/training/loop.py``, which entity training runs too; this module adds a classifier's hooks:
cross-entropy over the labels, and accuracy, macro-F1 and a per-class report on the validation split.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton_runtime import constants
from lepton_runtime.errors import InvalidInputError
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.training.head import embed_texts, fit_head_weights
from lepton_runtime.training.loop import TrainingConfig, choose_device, run_metrics, seed_everything
from lepton_runtime.training.loop import train as train_loop
from lepton_runtime.training.pooled import (
    is_sentence_encoder,
    mean_pooled,
    normalizes,
    pooled_classifier,
    save_pooled_classifier,
)

TRAINING_METRICS_FILE = "training_metrics.json"
VALIDATION_FILE = constants.VALIDATION_FILE


@dataclass
class EpochReport:
    """One epoch: mean training loss, validation accuracy and macro-F1, wall seconds (evaluation included)."""

    epoch: int
    train_loss: float
    validation_accuracy: float
    validation_macro_f1: float
    seconds: float


@dataclass
class Evaluation:
    """Validation figures: accuracy, macro-F1 and, per label, precision, recall, F1 and support."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]


@dataclass
class TrainingResult:
    """Where the best checkpoint is and how it did."""

    output_dir: Path
    labels: list[str]
    best_epoch: int
    validation_accuracy: float
    validation_macro_f1: float
    epochs: list[EpochReport] = field(default_factory=list)
    train_size: int = 0
    validation_size: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    autocast_steps: int = 0  # optimiser steps whose forward pass ran under autocast

    def metrics(self) -> dict[str, Any]:
        accuracy = {"validation_accuracy": self.validation_accuracy, "validation_macro_f1": self.validation_macro_f1}
        return accuracy | run_metrics(self) | {"per_class": self.per_class}


def stratified_split(data: LabelledTexts, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a train/validation split that keeps each label's share (at least one of each in validation)."""
    assert data.labels is not None
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(data.labels):
        by_label.setdefault(label, []).append(index)
    train, validation = [], []
    for indices in by_label.values():
        rng.shuffle(indices)
        cut = max(1, round(len(indices) * fraction)) if len(indices) > 1 else 0
        validation += indices[:cut]
        train += indices[cut:]
    return sorted(train), sorted(validation)


def fine_tune(
    data: LabelledTexts,
    base: Path,
    output_dir: Path,
    config: TrainingConfig | None = None,
    *,
    validation: LabelledTexts | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainingResult:
    """Fine-tune ``base`` on ``data``; keep the best epoch (by validation accuracy) in ``output_dir``.

    ``on_step(step, total_steps, loss)`` runs after every optimiser step and may raise to stop the
    run (a cancel); ``on_epoch(report)`` after every evaluation.
    """
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = config or TrainingConfig()

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # a new head is expected
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if data.labels is None:
        raise InvalidInputError(f"{data.source}: training needs a label on every row")
    labels = sorted(set(data.labels) | set(validation.labels if validation and validation.labels else []))
    if len(labels) < 2:
        raise InvalidInputError(f"{data.source}: only one label ({labels[0]!r}); a classifier needs at least two")
    started = time.perf_counter()
    seed_everything(config.seed)
    device = choose_device(config.device)
    if validation is None:
        train_rows, validation_rows = stratified_split(data, config.validation_fraction, config.seed)
        train_texts = [data.texts[i] for i in train_rows]
        train_labels = [data.labels[i] for i in train_rows]
        validation = LabelledTexts(
            [data.texts[i] for i in validation_rows], [data.labels[i] for i in validation_rows], data.source
        )
    else:
        train_texts, train_labels = data.texts, data.labels
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(base)
    train_targets = [label_ids[label] for label in train_labels]
    pooled = is_sentence_encoder(base)
    if pooled:  # the head on the embedding the base was trained for, starting from a linear probe (LP-FT)
        model = _pooled_classifier(base, tokenizer, train_texts, train_targets, len(labels), config).to(device)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            # a base that is already a classifier (other labels) gets a new head of the right size
            base,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id=label_ids,
            ignore_mismatched_sizes=True,
        ).to(device)
    encoded = tokenizer(train_texts, truncation=True, max_length=config.max_length)["input_ids"]

    def keep(trained: Any) -> None:
        _save(trained, tokenizer, base, output_dir, labels, pooled)

    hooks = ClassifierHooks(tokenizer, encoded, train_targets, validation, labels, config.max_length, keep)
    run = train_loop(model, hooks, config, device, head_prefixes=CLASSIFIER_HEAD, on_step=on_step, on_epoch=on_epoch)
    best: Evaluation = run.best_figures
    result = TrainingResult(
        output_dir, labels, run.best_epoch, run.best_score, best.macro_f1, epochs=run.epochs,
        train_size=len(train_texts), validation_size=len(validation), device=device, precision=run.precision,
        per_class=best.per_class, autocast_steps=run.autocast_steps,
    )  # fmt: skip
    result.seconds = time.perf_counter() - started
    with (output_dir / VALIDATION_FILE).open("w", encoding="utf-8") as stream:
        for text, label in zip(validation.texts, validation.labels or [], strict=True):
            stream.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    (output_dir / TRAINING_METRICS_FILE).write_text(json.dumps(result.metrics(), indent=2) + "\n")
    return result


# Parameters that learn at the head's rate: the classifier and BERT's pooler (the [CLS] head's dense layer).
CLASSIFIER_HEAD = ("classifier", "bert.pooler")


@dataclass
class ClassifierHooks:
    """The loop's hooks for a sequence classifier: cross-entropy of a padded batch, accuracy on validation."""

    tokenizer: Any
    encoded: list[list[int]]
    targets: list[int]
    validation: LabelledTexts
    labels: list[str]
    max_length: int
    keep: Callable[[Any], None]

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.encoded]

    def loss(self, model: Any, rows: list[int], device: str) -> Any:
        import torch

        batch = self.tokenizer.pad({"input_ids": [self.encoded[i] for i in rows]}, return_tensors="pt").to(device)
        targets = torch.tensor([self.targets[i] for i in rows], device=device)
        return torch.nn.functional.cross_entropy(_logits(model(**batch)).float(), targets)

    def evaluate(self, model: Any, device: str) -> tuple[float, Evaluation]:
        evaluation = evaluate(model, self.tokenizer, self.validation, self.labels, self.max_length, device)
        return evaluation.accuracy, evaluation

    def save(self, model: Any) -> None:
        self.keep(model)

    def report(self, epoch: int, train_loss: float, score: float, figures: Evaluation, seconds: float) -> EpochReport:
        return EpochReport(epoch, train_loss, figures.accuracy, figures.macro_f1, seconds)


def _save(model: Any, tokenizer: Any, base: Path, output_dir: Path, labels: list[str], pooled: bool) -> None:
    """The best epoch so far: a sentence-transformers directory plus its head, or a Hugging Face classifier."""
    if pooled:
        save_pooled_classifier(model, tokenizer, base, output_dir, labels)
    else:
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)


def evaluate(
    model: Any, tokenizer: Any, data: LabelledTexts, labels: list[str], max_length: int, device: str = "cpu"
) -> Evaluation:
    """Accuracy, macro-F1 (over the labels present in ``data``) and a per-class report of ``model``."""
    import torch

    assert data.labels is not None
    model.eval()
    predicted: list[int] = []
    order = sorted(range(len(data)), key=lambda i: len(data.texts[i]))
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            batch = tokenizer(
                [data.texts[i] for i in rows], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            ).to(device)
            predicted += _logits(model(**batch)).argmax(dim=1).tolist()
    label_ids = {label: i for i, label in enumerate(labels)}
    by_row = dict(zip(order, predicted, strict=True))
    truth = np.asarray([label_ids.get(label, -1) for label in data.labels])
    guess = np.asarray([by_row[i] for i in range(len(data))])
    per_class: dict[str, dict[str, float]] = {}
    for label_id in sorted(set(truth.tolist()) - {-1}):
        tp = float(np.sum((guess == label_id) & (truth == label_id)))
        precision = tp / max(1, np.sum(guess == label_id))
        recall = tp / max(1, np.sum(truth == label_id))
        f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
        per_class[labels[label_id]] = {
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "support": int(np.sum(truth == label_id)),
        }  # fmt: skip
    macro_f1 = float(np.mean([entry["f1"] for entry in per_class.values()])) if per_class else 0.0
    return Evaluation(float(np.mean(guess == truth)), macro_f1, per_class)


def _pooled_classifier(
    base: Path, tokenizer: Any, texts: list[str], targets: list[int], classes: int, config: TrainingConfig
) -> Any:
    """``base``'s encoder, its mean pooling and a linear head that starts as the logistic regression of ``targets`` on
    the frozen embeddings of ``texts`` (linear probing, then fine-tuning: the body's features are not torn up by a
    random head's first gradients; Kumar et al. 2022)."""
    from transformers import AutoModel

    encoder = mean_pooled(AutoModel.from_pretrained(base), normalizes(base))
    vectors = embed_texts(encoder, tokenizer, texts, config.max_length)
    weight, bias, _ = fit_head_weights(vectors, np.asarray(targets), classes, config.seed)
    return pooled_classifier(encoder, weight, bias)


def _logits(output: Any) -> Any:
    """A Hugging Face model's ``.logits``, or the tensor a pooled classifier returns."""
    return getattr(output, "logits", output)
