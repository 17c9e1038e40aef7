"""Fine-tuning of a Hugging Face encoder as a sequence classifier with PyTorch (imported lazily).

A sentence-transformers base (all-MiniLM-L6-v2, the default) gets its head on the mean-pooled embedding it was
trained for, started from a linear probe (lepton_runtime/training/pooled.py); any other base gets the
``[CLS]`` pooler head of ``AutoModelForSequenceClassification``.

The device is chosen automatically (CUDA when present, with mixed precision; else the CPU with one
thread per available core); batches group texts of similar length and pad dynamically; AdamW with
linear warm-up and decay, gradient clipping, evaluation each epoch (accuracy, macro-F1, per-class
report), early stopping on validation accuracy, fixed seeds. The best epoch is kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton_runtime import constants
from lepton_runtime.errors import InvalidInputError
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.machine import available_cores
from lepton_runtime.training.head import embed_texts, fit_head_weights
from lepton_runtime.training.pooled import (
    is_sentence_encoder,
    mean_pooled,
    normalizes,
    pooled_classifier,
    save_pooled_classifier,
)

TRAINING_METRICS_FILE = "training_metrics.json"
VALIDATION_FILE = constants.VALIDATION_FILE


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters with their units; defaults fit MiniLM-L6 on a 2-core CPU."""

    epochs: int = constants.DEFAULT_TRAIN_EPOCHS
    learning_rate: float = constants.DEFAULT_TRAIN_LEARNING_RATE
    head_learning_rate: float = 1e-3
    batch_size: int = constants.DEFAULT_TRAIN_BATCH_SIZE
    max_length: int = constants.DEFAULT_TRAIN_MAX_LENGTH
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    validation_fraction: float = 0.2
    early_stopping_patience_epochs: int = 2
    seed: int = constants.DEFAULT_TRAIN_SEED
    device: str = "auto"  # auto | cpu | cuda


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

    def metrics(self) -> dict[str, Any]:
        return {
            "validation_accuracy": self.validation_accuracy,
            "validation_macro_f1": self.validation_macro_f1,
            "best_epoch": self.best_epoch,
            "train_size": self.train_size,
            "validation_size": self.validation_size,
            "training_seconds": round(self.seconds, 1),
            "device": self.device,
            "training_precision": self.precision,
            "epochs": [asdict(e) for e in self.epochs],
            "per_class": self.per_class,
        }


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
    config: TrainingConfig = TrainingConfig(),
    *,
    validation: LabelledTexts | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainingResult:
    """Fine-tune ``base`` on ``data``; keep the best epoch (by validation accuracy) in ``output_dir``.

    ``on_step(step, total_steps, loss)`` runs after every optimiser step and may raise to stop the
    run (a cancel); ``on_epoch(report)`` after every evaluation.
    """
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # a new head is expected
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if data.labels is None:
        raise InvalidInputError(f"{data.source}: training needs a label on every row")
    labels = sorted(set(data.labels) | set(validation.labels if validation and validation.labels else []))
    if len(labels) < 2:
        raise InvalidInputError(f"{data.source}: only one label ({labels[0]!r}); a classifier needs at least two")
    started = time.perf_counter()
    _seed_everything(config.seed)
    device = choose_device(config.device)
    if device == "cpu":
        torch.set_num_threads(available_cores())
    # mixed precision on CUDA: bf16 where the GPU has it (no loss scaling needed), else fp16 with a scaler
    amp_dtype = None
    if device == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
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
    train_encoded = tokenizer(train_texts, truncation=True, max_length=config.max_length)["input_ids"]
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
    batches_per_epoch = math.ceil(len(train_texts) / config.batch_size)
    head = [p for n, p in model.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
    body = [p for n, p in model.named_parameters() if not n.startswith(("classifier", "bert.pooler"))]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.learning_rate}, {"params": head, "lr": config.head_learning_rate}],
        weight_decay=config.weight_decay,
    )
    total_steps = batches_per_epoch * config.epochs
    warmup_steps = int(total_steps * config.warmup_fraction)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)  # type: ignore[no-untyped-call]
    result = TrainingResult(
        output_dir, labels, 0, -1.0, 0.0, train_size=len(train_texts), validation_size=len(validation), device=device,
        precision={None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[amp_dtype],
    )  # fmt: skip
    stale_epochs, step = 0, 0
    for epoch in range(1, config.epochs + 1):
        epoch_started, losses = time.perf_counter(), []
        model.train()
        for rows in _length_grouped_batches([len(x) for x in train_encoded], config.batch_size, config.seed + epoch):
            batch = tokenizer.pad({"input_ids": [train_encoded[i] for i in rows]}, return_tensors="pt").to(device)
            targets = torch.tensor([train_targets[i] for i in rows], device=device)
            autocast = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with autocast:
                loss = torch.nn.functional.cross_entropy(_logits(model(**batch)).float(), targets)
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            step += 1
            if on_step:
                on_step(step, total_steps, losses[-1])
        evaluation = evaluate(model, tokenizer, validation, labels, config.max_length, device)
        report = EpochReport(
            epoch, float(np.mean(losses)), evaluation.accuracy, evaluation.macro_f1, time.perf_counter() - epoch_started
        )
        result.epochs.append(report)
        if on_epoch:
            on_epoch(report)
        if evaluation.accuracy > result.validation_accuracy:
            result.best_epoch, result.validation_accuracy = epoch, evaluation.accuracy
            result.validation_macro_f1, result.per_class = evaluation.macro_f1, evaluation.per_class
            if pooled:
                save_pooled_classifier(model, tokenizer, base, output_dir, labels)
            else:
                model.save_pretrained(output_dir)
                tokenizer.save_pretrained(output_dir)
            stale_epochs = 0
        else:
            stale_epochs += 1
            if stale_epochs >= config.early_stopping_patience_epochs:
                break
    result.seconds = time.perf_counter() - started
    with (output_dir / VALIDATION_FILE).open("w", encoding="utf-8") as stream:
        for text, label in zip(validation.texts, validation.labels or [], strict=True):
            stream.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    (output_dir / TRAINING_METRICS_FILE).write_text(json.dumps(result.metrics(), indent=2) + "\n")
    return result


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


def choose_device(wanted: str) -> str:
    """``cuda`` when asked or (``auto``) when PyTorch sees a GPU, else ``cpu``."""
    import torch

    if wanted not in {"auto", "cpu", "cuda"}:
        raise InvalidInputError(f"device: {wanted!r} is not one of auto, cpu, cuda")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device: cuda was asked for but PyTorch sees no GPU; use --device auto or cpu")
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def _length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort windows of 50 batches by length, cut, shuffle the batches: little padding, still random."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    grouped: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        grouped += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(grouped)
    return grouped


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
