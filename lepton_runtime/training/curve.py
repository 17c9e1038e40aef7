"""The training curve of a run as a PNG beside its checkpoint: loss and validation accuracy per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lepton_runtime.training.finetune import EpochReport

CURVE_FILE = "training_curve.png"


def save_training_curve(epochs: Sequence[EpochReport], path: Path, *, title: str, best_epoch: int) -> Path:
    """Plot mean training loss (left axis) and validation accuracy (right axis) per epoch; mark the kept epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = [report.epoch for report in epochs]
    figure, loss_axis = plt.subplots(figsize=(7, 4.2), dpi=120)
    loss_axis.plot(numbers, [r.train_loss for r in epochs], "o-", color="tab:blue", label="training loss (mean)")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    loss_axis.set_xticks(numbers)
    metric_axis = loss_axis.twinx()
    metric_axis.plot(
        numbers, [r.validation_accuracy for r in epochs], "s-", color="tab:orange", label="validation accuracy"
    )
    metric_axis.plot(
        numbers, [r.validation_macro_f1 for r in epochs], "^--", color="tab:green", label="validation macro-F1"
    )
    metric_axis.set_ylabel("validation", color="tab:orange")
    lowest = min(min(r.validation_accuracy, r.validation_macro_f1) for r in epochs)
    metric_axis.set_ylim(max(0.0, lowest - 0.1), 1.0)  # room to see epoch-to-epoch changes
    metric_axis.axvline(best_epoch, color="grey", linestyle=":", label=f"kept: epoch {best_epoch}")
    handles = loss_axis.get_legend_handles_labels()[0] + metric_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles=handles, loc="center right", fontsize="small")
    loss_axis.set_title(title, fontsize="medium")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
