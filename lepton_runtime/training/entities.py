"""Fine-tuning of an encoder as a token classifier (entity extraction) with PyTorch (imported lazily).

Data is CoNLL-style JSONL: ``{"tokens": [...], "tags": [...]}`` (BIO tags), or ``{"text", "spans": [{"start",
"end", "label"}]}`` (character spans; the text is split at whitespace into words). Every sub-word piece is
trained: the first piece of a word gets the word's tag and the others its ``I-`` form, so the engine can read
entities from any piece on raw text (whose words the tokenizer cuts finer than CoNLL's, "U.S." say). Each epoch
is scored as seqeval scores CoNLL: entity-level precision, recall and F1 with exact span and type, per type,
from each word's first piece. The best epoch by F1 is kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton_runtime import bio
from lepton_runtime.errors import InvalidInputError
from lepton_runtime.labelled_data import TaggedSentences
from lepton_runtime.training.finetune import TRAINING_METRICS_FILE
from lepton_runtime.training.loop import TrainingConfig, choose_device, run_metrics, seed_everything
from lepton_runtime.training.loop import train as train_loop

IGNORED = -100  # the label id PyTorch's cross-entropy skips (special tokens)


@dataclass
class EntityEpoch:
    """One epoch: mean training loss, validation entity F1 (micro), wall seconds (evaluation included)."""

    epoch: int
    train_loss: float
    validation_f1: float
    seconds: float


@dataclass
class EntityTrainingResult:
    """Where the best checkpoint is and how it did: entity-level figures per type, as seqeval computes them."""

    output_dir: Path
    labels: list[str]
    best_epoch: int = 0
    validation_f1: float = -1.0
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    epochs: list[EntityEpoch] = field(default_factory=list)
    train_size: int = 0
    validation_size: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    autocast_steps: int = 0  # optimiser steps whose forward pass ran under autocast

    def metrics(self) -> dict[str, Any]:
        return {"validation_entity_f1": self.validation_f1, "per_type": self.per_type, **run_metrics(self)}


def fine_tune_entities(
    data: TaggedSentences,
    base: Path,
    output_dir: Path,
    config: TrainingConfig,
    *,
    validation: TaggedSentences,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EntityEpoch], None] | None = None,
) -> EntityTrainingResult:
    """Fine-tune ``base`` as a token classifier on ``data``; keep the best epoch (validation entity F1)."""
    import transformers
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # a new head is expected
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    seed_everything(config.seed)
    device = choose_device(config.device)
    labels = data.labels()
    unknown = sorted({tag for row in validation.tags for tag in row} - set(labels))
    if unknown:
        raise InvalidInputError(f"{validation.source}: tags the training data never has: {unknown[:10]}")
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids,
        ignore_mismatched_sizes=True,
    ).to(device)  # fmt: skip
    inputs, targets = _encode(tokenizer, data, label_ids, config.max_length)
    hooks = EntityHooks(tokenizer, inputs, targets, validation, labels, config.max_length, output_dir)
    run = train_loop(model, hooks, config, device, head_prefixes=("classifier",), on_step=on_step, on_epoch=on_epoch)
    result = EntityTrainingResult(
        output_dir, labels, run.best_epoch, run.best_score, run.best_figures or {}, run.epochs, len(data),
        len(validation), device=device, precision=run.precision, autocast_steps=run.autocast_steps,
    )  # fmt: skip
    result.seconds = time.perf_counter() - started
    (output_dir / TRAINING_METRICS_FILE).write_text(json.dumps(result.metrics(), indent=2) + "\n")
    return result


@dataclass
class EntityHooks:
    """The loop's hooks for a token classifier: cross-entropy over every real piece, entity F1 on validation."""

    tokenizer: Any
    inputs: list[list[int]]
    targets: list[list[int]]
    validation: TaggedSentences
    labels: list[str]
    max_length: int
    output_dir: Path

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.inputs]

    def loss(self, model: Any, rows: list[int], device: str) -> Any:
        import torch

        batch = self.tokenizer.pad({"input_ids": [self.inputs[i] for i in rows]}, return_tensors="pt").to(device)
        width = batch["input_ids"].shape[1]
        target = torch.tensor(
            [self.targets[i] + [IGNORED] * (width - len(self.targets[i])) for i in rows], device=device
        )
        logits = model(**batch).logits.float()
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORED)

    def evaluate(self, model: Any, device: str) -> tuple[float, dict[str, dict[str, float]]]:
        return evaluate_entities(model, self.tokenizer, self.validation, self.labels, self.max_length, device)

    def save(self, model: Any) -> None:
        model.save_pretrained(self.output_dir)
        self.tokenizer.save_pretrained(self.output_dir)

    def report(self, epoch: int, train_loss: float, score: float, figures: Any, seconds: float) -> EntityEpoch:
        return EntityEpoch(epoch, train_loss, score, seconds)


def _encode(
    tokenizer: Any, data: TaggedSentences, label_ids: dict[str, int], max_length: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of each sentence and a label per piece: the word's tag on its first piece, the tag's I- form on
    the others, IGNORED on special tokens."""
    encoded = tokenizer(data.words, is_split_into_words=True, truncation=True, max_length=max_length)
    targets = []
    for index, tags in enumerate(data.tags):
        row, previous = [], None
        for word in encoded.word_ids(index):
            if word is None:
                row.append(IGNORED)
            elif word != previous:
                row.append(label_ids[tags[word]])
            else:
                row.append(label_ids[bio.inside(tags[word])])
            previous = word
        targets.append(row)
    return list(encoded["input_ids"]), targets


def evaluate_entities(
    model: Any, tokenizer: Any, data: TaggedSentences, labels: list[str], max_length: int, device: str = "cpu"
) -> tuple[float, dict[str, dict[str, float]]]:
    """Micro entity F1 and per-type precision/recall/F1/support (seqeval, exact span and type) from each word's
    first piece; words cut off by ``max_length`` count as O."""
    import torch
    from seqeval.metrics import classification_report, f1_score

    model.eval()
    predicted: list[list[str]] = [[] for _ in range(len(data))]
    order = sorted(range(len(data)), key=lambda i: len(data.words[i]))
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            batch = tokenizer(
                [data.words[i] for i in rows], is_split_into_words=True, truncation=True, max_length=max_length,
                padding=True, return_tensors="pt",
            ).to(device)  # fmt: skip
            best = model(**batch).logits.argmax(dim=-1).tolist()
            for position, row in enumerate(rows):
                tags = [bio.OUTSIDE] * len(data.words[row])
                previous = None
                for token, word in enumerate(batch.word_ids(position)):
                    if word is not None and word != previous:
                        tags[word] = labels[best[position][token]]
                    previous = word
                predicted[row] = tags
    report = classification_report(data.tags, predicted, output_dict=True, zero_division=0)
    per_type = {kind: _figures(figures) for kind, figures in report.items() if not kind.endswith("avg")}
    return float(f1_score(data.tags, predicted)), per_type


def _figures(report: dict[str, Any]) -> dict[str, float]:
    return {
        "precision": round(float(report["precision"]), 4),
        "recall": round(float(report["recall"]), 4),
        "f1": round(float(report["f1-score"]), 4),
        "support": int(report["support"]),
    }
