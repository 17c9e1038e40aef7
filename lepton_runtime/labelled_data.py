"""Labelled text files (JSONL ``{"text", "label"}`` or CSV with named columns), read with errors that name the line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.text_files import csv_rows, jsonl_rows


@dataclass(frozen=True)
class LabelledTexts:
    """Texts and, when the file has them, their labels (all or none)."""

    texts: list[str]
    labels: list[str] | None
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def read_labelled(
    path: Path, *, text_field: str = "text", label_field: str = "label", require_labels: bool = False
) -> LabelledTexts:
    """Read a .jsonl or .csv file; raise InvalidInputError naming the line and field of the first problem."""
    rows = list(csv_rows(path, text_field) if path.suffix.lower() == ".csv" else jsonl_rows(path))
    if not rows:
        raise InvalidInputError(f"{path}: the file has no rows; give at least one labelled text")
    texts, labels = [], []
    for line, row in rows:
        text = row.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(
                f"{path}: line {line}: field {text_field!r} is missing or not a non-empty string",
                issues=[InputIssue(f"{path.name}:{line}.{text_field}", "missing or empty")],
            )
        texts.append(text)
        label = row.get(label_field)
        labels.append(None if label is None else str(label))
    labelled = [label for label in labels if label is not None]
    if labelled and len(labelled) != len(labels):
        first = labels.index(None) + 1
        raise InvalidInputError(f"{path}: row {first} has no {label_field!r} while others do; label all rows or none")
    if require_labels and not labelled:
        raise InvalidInputError(f"{path}: no row has a {label_field!r} field; labels are required here")
    return LabelledTexts(texts, labelled or None, str(path))


def check_trainable(data: LabelledTexts, *, what: str = "training data") -> None:
    """Raise InvalidInputError (naming the file and the problem) unless ``data`` can train a classifier."""
    if data.labels is None:
        raise InvalidInputError(
            f"{data.source}: {what} has no labels; every row needs a 'label' (or the --label-field column)",
            issues=[InputIssue("label", "missing")],
        )
    counts: dict[str, int] = {}
    for label in data.labels:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise InvalidInputError(
            f"{data.source}: {what} has one label only ({only!r}, {len(data)} rows); a classifier needs at least two",
            issues=[InputIssue("label", "one distinct value")],
        )
