"""Labelled text files, read with errors that name the line: texts with a label each (JSONL ``{"text", "label"}`` or
CSV with named columns), and tagged sentences for entity models (JSONL ``{"tokens", "tags"}`` or ``{"text", "spans"}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_runtime import bio
from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.text_files import csv_rows, jsonl_rows
from lepton_runtime.unicode_text import surrogate_problem


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
        _refuse_lone_surrogates(path, line, row)
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


# -- tagged sentences (entity models) --------------------------------------------------------------------------


@dataclass(frozen=True)
class TaggedSentences:
    """Sentences as words with one BIO tag each (and the text each came from)."""

    words: list[list[str]]
    tags: list[list[str]]
    source: str

    def __len__(self) -> int:
        return len(self.words)

    def labels(self) -> list[str]:
        """Every tag, ``O`` first, then B-/I- pairs of each type in alphabetical order."""
        return bio.tag_set(bio.kind_of(tag) for row in self.tags for tag in row if tag != bio.OUTSIDE)


def read_tagged(path: Path) -> TaggedSentences:
    """Read tokens + BIO tags, or text + character spans, per line; errors name the line and the field."""
    words: list[list[str]] = []
    tags: list[list[str]] = []
    for line, row in jsonl_rows(path):
        _refuse_lone_surrogates(path, line, row)
        if "tokens" in row and "tags" in row:
            tokens, tagged = row["tokens"], row["tags"]
            if not isinstance(tokens, list) or not isinstance(tagged, list) or len(tokens) != len(tagged):
                raise InvalidInputError(
                    f"{path}: line {line}: 'tokens' and 'tags' must be lists of the same length"
                    f" (got {len(tokens) if isinstance(tokens, list) else type(tokens).__name__} and"
                    f" {len(tagged) if isinstance(tagged, list) else type(tagged).__name__})",
                    issues=[InputIssue(f"{path.name}:{line}.tags", "not aligned with tokens")],
                )
            bad = [tag for tag in tagged if not bio.is_tag(tag)]
            if bad:
                raise InvalidInputError(
                    f"{path}: line {line}: tags must be O, B-TYPE or I-TYPE; got {bad[:3]}",
                    issues=[InputIssue(f"{path.name}:{line}.tags", "not BIO")],
                )
            words.append([str(token) for token in tokens])
            tags.append(list(tagged))
        elif isinstance(row.get("text"), str) and isinstance(row.get("spans"), list):
            sentence, tagged = _words_of_spans(row["text"], row["spans"], f"{path}: line {line}")
            words.append(sentence)
            tags.append(tagged)
        else:
            raise InvalidInputError(
                f'{path}: line {line}: expected {{"tokens", "tags"}} or {{"text", "spans"}} (CoNLL-style JSONL)',
                issues=[InputIssue(f"{path.name}:{line}", "neither tokens+tags nor text+spans")],
            )
    if not words:
        raise InvalidInputError(f"{path}: the file has no rows; give at least one tagged sentence")
    return TaggedSentences(words, tags, str(path))


def _refuse_lone_surrogates(path: Path, line: int, row: dict[str, Any]) -> None:
    """A text, label, token or tag that UTF-8 cannot encode would fail deep inside training (the tokenizer, the
    manifest): refused here, naming the line and the field."""
    for field, value in row.items():
        for string in value if isinstance(value, list) else [value]:
            if isinstance(string, str) and (problem := surrogate_problem(string)) is not None:
                raise InvalidInputError(
                    f"{path}: line {line}: field {field!r} {problem}",
                    issues=[InputIssue(f"{path.name}:{line}.{field}", "holds a lone surrogate")],
                )


def _words_of_spans(text: str, spans: list[dict[str, Any]], where: str) -> tuple[list[str], list[str]]:
    """Whitespace words of ``text``, tagged B-/I- where they fall inside a span."""
    words, tags, position = [], [], 0
    for word in text.split():
        start = text.index(word, position)
        position = start + len(word)
        tag = bio.OUTSIDE
        for span in spans:
            if span["start"] <= start < span["end"]:
                tag = bio.begin(str(span["label"])) if start == span["start"] else bio.inside(str(span["label"]))
        words.append(word)
        tags.append(tag)
    if not words:
        raise InvalidInputError(f"{where}: 'text' is empty")
    return words, tags
