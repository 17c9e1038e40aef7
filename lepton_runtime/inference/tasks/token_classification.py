"""Entity extraction (token classification): a label per token -> entities as character spans of the original text.

Each word takes the label of its first sub-word piece (what training teaches), then its BIO tag groups words into
entities (lepton_runtime/bio.py: ``B-X`` starts one, ``I-X`` continues an entity of type X or starts one when none is
open, ``O`` closes it). Spans come from the tokenizer's character offsets, so ``text == original[start:end]`` whatever
the whitespace, accents, emoji or CJK. A text longer than the model's window is read in windows that overlap
by a quarter; each window keeps the entities that start in its own part (up to the middle of each overlap),
so an entity across a seam is kept once, from the window that saw it whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from lepton_runtime import bio
from lepton_runtime.inference.tasks.base import Task
from lepton_runtime.inference.tasks.classification import softmax
from lepton_runtime.inference.tokenization import EncodedText
from lepton_runtime.prediction import Entities, Entity
from lepton_runtime.task_names import TOKEN_CLASSIFICATION


class TokenClassification(Task):
    """Entities per text, from per-token logits."""

    name: ClassVar[str] = TOKEN_CLASSIFICATION
    output_name: ClassVar[str] = "logits"
    needs_offsets: ClassVar[bool] = True
    window_overlap: ClassVar[float | None] = 0.25

    def results(self, outputs: np.ndarray, encoded: Sequence[EncodedText]) -> list[_Window]:
        return [self._window(logits[: len(text.ids)], text) for logits, text in zip(outputs, encoded, strict=True)]

    def combine(self, windows: list[Any]) -> Entities:
        """Each window keeps the entities that start in its own part of the text."""
        kept: list[Entity] = []
        for index, window in enumerate(windows):
            low = -math.inf if index == 0 else _seam(windows[index - 1], window)
            high = math.inf if index == len(windows) - 1 else _seam(window, windows[index + 1])
            kept += [entity for entity in window.entities if low <= entity.start < high]
        return Entities(kept, self.provenance)

    def _window(self, logits: np.ndarray, text: EncodedText) -> _Window:
        assert text.offsets is not None and text.word_ids is not None and text.text is not None
        probabilities = softmax(logits)
        best = probabilities.argmax(axis=-1)
        confidence = probabilities.max(axis=-1)
        words: list[list[Any]] = []  # [start, end, label, score] of each word, from its first piece
        previous_word = -1
        for token, word in enumerate(text.word_ids.tolist()):
            if word < 0:
                continue
            start, end = text.offsets[token].tolist()
            if word == previous_word:
                words[-1][1] = max(words[-1][1], end)
            else:
                words.append([start, end, self.labels[best[token]], float(confidence[token])])
                previous_word = word
        real = text.offsets[text.word_ids >= 0]
        span = (int(real[:, 0].min()), int(real[:, 1].max())) if len(real) else (0, 0)
        return _Window(group_words(words, text.text), span)


class _Window:
    """The entities one window found, and the characters its tokens cover."""

    __slots__ = ("entities", "span")

    def __init__(self, entities: list[Entity], span: tuple[int, int]) -> None:
        self.entities = entities
        self.span = span


def _seam(left: _Window, right: _Window) -> float:
    """Where ``left``'s part ends and ``right``'s begins: the middle of the characters both cover."""
    return (right.span[0] + left.span[1]) / 2


def group_words(words: list[list[Any]], original: str) -> list[Entity]:
    """Labelled words (``[start, end, label, score]``) grouped into entities by their BIO tags (lepton_runtime.bio);
    an entity's score is the mean of its words'."""
    return [
        Entity(span.start, span.end, span.kind, float(np.mean([words[i][3] for i in span.words])),
               original[span.start : span.end])
        for span in bio.group([(start, end, label) for start, end, label, _ in words])
    ]  # fmt: skip
