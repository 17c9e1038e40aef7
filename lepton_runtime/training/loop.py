"""The one training loop every trainable task runs: AdamW with a body and a head learning rate, linear warm-up and
decay, length-grouped dynamically padded batches, mixed precision (autocast, and the gradient scaler for fp16),
gradient clipping, evaluation each epoch, early stopping and the best epoch saved. PyTorch is imported lazily.

A task brings only what differs (``TrainingHooks``): how a batch of rows becomes a loss, how the model is scored
on the validation data, and how the best epoch is saved.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np

from lepton_runtime import constants
from lepton_runtime.errors import InvalidInputError
from lepton_runtime.machine import available_cores

# auto: bf16 autocast on a GPU that has it, fp16 with loss scaling on one that does not, fp32 on the CPU
Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
# Length-grouped batches: this many batches' rows are sorted by length together, then cut.
BATCHES_PER_LENGTH_WINDOW = 50

Report = TypeVar("Report")
Report_co = TypeVar("Report_co", covariant=True)


class TrainingHooks(Protocol[Report_co]):
    """What one task adds to the loop."""

    def lengths(self) -> list[int]:
        """Tokens of each training row (batches group rows of similar length)."""

    def loss(self, model: Any, rows: list[int], device: str) -> Any:
        """The mean loss of the training ``rows`` as a float32 scalar tensor (the loop runs this under autocast)."""

    def evaluate(self, model: Any, device: str) -> tuple[float, Any]:
        """(the score the best epoch is chosen by, the figures kept with it) on the validation data."""

    def save(self, model: Any) -> None:
        """Keep ``model`` as the best so far."""

    def report(self, epoch: int, train_loss: float, score: float, figures: Any, seconds: float) -> Report_co:
        """The epoch's report (what ``on_epoch`` receives and the result lists)."""


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
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; fp16 with the gradient scaler)


@dataclass
class LoopResult(Generic[Report]):
    """The best epoch, its score and figures, every epoch's report, and how the steps ran."""

    best_epoch: int = 0
    best_score: float = -1.0
    best_figures: Any = None
    epochs: list[Report] = field(default_factory=list)
    precision: str = "fp32"  # "fp32", "bf16 autocast" or "fp16 autocast"
    autocast_steps: int = 0  # steps whose forward pass ran inside autocast (seen from inside it)
    steps: int = 0


def train(
    model: Any,
    hooks: TrainingHooks[Report],
    config: TrainingConfig,
    device: str,
    *,
    head_prefixes: Sequence[str],
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[Report], None] | None = None,
) -> LoopResult[Report]:
    """Train ``model`` with ``hooks``; parameters whose names start with ``head_prefixes`` learn at the head rate.

    ``on_step(step, total_steps, loss)`` runs after every optimiser step and may raise to stop the run (a cancel);
    ``on_epoch(report)`` after every evaluation.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    amp_dtype = autocast_dtype(config.precision, device)
    scaler = torch.amp.GradScaler(device, enabled=amp_dtype == torch.float16)
    head = [p for n, p in model.named_parameters() if n.startswith(tuple(head_prefixes))]
    body = [p for n, p in model.named_parameters() if not n.startswith(tuple(head_prefixes))]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.learning_rate}, {"params": head, "lr": config.head_learning_rate}],
        weight_decay=config.weight_decay,
    )
    lengths = hooks.lengths()
    total_steps = -(-len(lengths) // config.batch_size) * config.epochs
    scheduler = get_linear_schedule_with_warmup(  # type: ignore[no-untyped-call]
        optimizer, int(total_steps * config.warmup_fraction), total_steps
    )
    result: LoopResult[Report] = LoopResult(precision=precision_name(amp_dtype))
    stale_epochs = 0
    for epoch in range(1, config.epochs + 1):
        epoch_started, losses = time.perf_counter(), []
        model.train()
        for rows in length_grouped_batches(lengths, config.batch_size, config.seed + epoch):
            autocast = torch.autocast(device, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with autocast:
                result.autocast_steps += torch.is_autocast_enabled(device)
                loss = hooks.loss(model, rows, device)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            result.steps += 1
            if on_step:
                on_step(result.steps, total_steps, losses[-1])
        score, figures = hooks.evaluate(model, device)
        report = hooks.report(epoch, float(np.mean(losses)), score, figures, time.perf_counter() - epoch_started)
        result.epochs.append(report)
        if on_epoch:
            on_epoch(report)
        if score > result.best_score:
            result.best_epoch, result.best_score, result.best_figures = epoch, score, figures
            hooks.save(model)
            stale_epochs = 0
        else:
            stale_epochs += 1
            if stale_epochs >= config.early_stopping_patience_epochs:
                break
    return result


def run_metrics(result: Any) -> dict[str, Any]:
    """What every trainable task's result records of its run, whatever its own figures (a ``TrainingResult`` or an
    ``EntityTrainingResult``: best epoch, sizes, time, device, precision, every epoch's report)."""
    return {
        "best_epoch": result.best_epoch,
        "train_size": result.train_size,
        "validation_size": result.validation_size,
        "training_seconds": round(result.seconds, 1),
        "device": result.device,
        "training_precision": result.precision,
        "epochs": [asdict(epoch) for epoch in result.epochs],
    }


def autocast_dtype(precision: str, device: str) -> Any:
    """The autocast dtype of ``precision`` on ``device`` (None: fp32). ``auto`` is bf16 on a GPU that has it, fp16
    (with loss scaling) on one that does not, and fp32 on the CPU; bf16 and fp16 are taken as asked."""
    import torch

    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_name(dtype: Any) -> str:
    """How a run's precision is reported: ``fp32``, ``bf16 autocast`` or ``fp16 autocast``."""
    import torch

    return "fp32" if dtype is None else "bf16 autocast" if dtype == torch.bfloat16 else "fp16 autocast"


def choose_device(wanted: str) -> str:
    """``cuda`` when asked or (``auto``) when PyTorch sees a GPU, else ``cpu``; on the CPU, one thread per core."""
    import torch

    if wanted not in {"auto", "cpu", "cuda"}:
        raise InvalidInputError(f"device: {wanted!r} is not one of auto, cpu, cuda")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device: cuda was asked for but PyTorch sees no GPU; use --device auto or cpu")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if wanted == "auto" else wanted
    if device == "cpu":
        torch.set_num_threads(available_cores())
    return device


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort windows of 50 batches by length, cut, shuffle the batches: little padding, still random."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * BATCHES_PER_LENGTH_WINDOW
    grouped: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        grouped += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(grouped)
    return grouped


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and PyTorch's generators from one seed."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
