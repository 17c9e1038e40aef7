"""The demo job end to end: a published model (fine-tuned here if missing), `lepton up`, a bulk job, a summary."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_runtime.errors import ModelNotFoundError
from lepton_runtime.jobs import TrainingProgress, TrainRequest
from lepton_runtime.labelled_data import read_labelled
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.text_files import jsonl_rows

DEMO_MODEL = "sentiment"
# The SST-2 development sentences that sit beside a checkout (../shared/datasets).
DEFAULT_DEMO_DATA = Path("../shared/datasets/sst2/dev.jsonl")


def ensure_model(
    registry: ModelRegistry,
    data: Path,
    work_dir: Path,
    epochs: int,
    on_progress: Callable[[TrainingProgress], None] | None,
    report: Callable[[str], None],
) -> tuple[ModelVersion, bool]:
    """Return the production demo model, training and publishing it first (``lepton train``'s path) if there is none."""
    try:
        return registry.resolve(f"{DEMO_MODEL}@production"), False
    except ModelNotFoundError:
        pass
    from export.training_run import train_and_publish

    report(f"fine-tuning MiniLM-L6 on {data} ({epochs} epochs, 80/20 split), as `lepton train` does")
    train_and_publish(
        read_labelled(data, require_labels=True),
        TrainRequest(name=DEMO_MODEL, source=str(data), epochs=epochs),
        registry=registry,
        checkpoint_dir=work_dir / "checkpoints",
        run_id="demo",
        on_progress=on_progress,
        report=report,
    )
    return registry.resolve(f"{DEMO_MODEL}@production"), True


def held_out_texts(version: ModelVersion) -> set[str]:
    """The validation split the version was trained without (kept beside its checkpoint), if it is here."""
    from lepton_runtime.training.finetune import VALIDATION_FILE

    checkpoint = version.manifest.source.get("checkpoint")
    path = Path(checkpoint) / VALIDATION_FILE if checkpoint else None
    return set(read_labelled(path).texts) if path is not None and path.is_file() else set()


@dataclass
class BulkSummary:
    """How the demo's bulk job went, against the file's labels."""

    rows: int
    errors: int
    accuracy_all: float | None
    accuracy_held_out: float | None
    held_out: int
    samples: list[dict[str, Any]]


def summarise(rows: list[dict[str, Any]], data: Path, held_out_texts: set[str]) -> BulkSummary:
    """Accuracy of the output rows against the data file's labels, on all rows and on the held-out ones."""
    texts, labels = {}, {}
    for number, row in jsonl_rows(data):  # ids as a bulk job gives them: the row's id, else its line number
        item_id = str(row.get("id", number))
        texts[item_id] = row["text"]
        if row.get("label") is not None:
            labels[item_id] = str(row["label"])
    scored = [(row, labels[row["id"]]) for row in rows if "label" in row and row["id"] in labels]
    held = [(row, gold) for row, gold in scored if texts[row["id"]] in held_out_texts]

    def accuracy(pairs: list[tuple[dict[str, Any], str]]) -> float | None:
        return sum(row["label"] == gold for row, gold in pairs) / len(pairs) if pairs else None

    samples = [{**row, "text": texts[row["id"]]} for row in rows[:6] if "label" in row]
    errors = sum("error" in row for row in rows)
    return BulkSummary(len(rows), errors, accuracy(scored), accuracy(held), len(held), samples)


class BackgroundFleet:
    """``lepton up`` as a child process: started, awaited until it says ready, stopped with SIGTERM."""

    def __init__(self, data_dir: Path, redis_port: int, flower_port: int) -> None:
        self.command = [
            sys.executable, "-m", "lepton_runtime", "up", "--data-dir", str(data_dir),
            "--redis-port", str(redis_port), "--flower-port", str(flower_port), "--no-trainer",
        ]  # fmt: skip
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self, timeout_s: float = 240.0) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        for line in self.process.stdout:  # blocks on the child's output: no polling
            self.lines.append(line.rstrip())
            if "lepton up: ready" in line:
                return
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("`lepton up` did not become ready:\n" + "\n".join(self.lines[-20:]))

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (lepton up then stops worker, Flower and Redis in order); return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process.stdout is not None:
            self.lines += [line.rstrip() for line in self.process.stdout]
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
