"""The BIO tags of entity models, in one place: ``B-X`` begins an entity of type X, ``I-X`` continues one (or begins
one where no X is open), ``O`` is outside any; a label without a prefix counts as ``B-``.

Reading data (spans into tags), training (the tag of a word's later pieces), gold spans of labelled sentences and
the served model's entities all read tags through here, so they agree on where an entity begins and ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

OUTSIDE = "O"
BEGIN, INSIDE = "B-", "I-"


class TaggedSpan(NamedTuple):
    """One entity of tagged words: from its first word's start to its last word's end, and which words it holds."""

    start: int
    end: int
    kind: str
    words: range


def is_tag(tag: Any) -> bool:
    """Whether ``tag`` is a BIO tag as training data must spell it (``O``, ``B-X``, ``I-X``)."""
    return tag == OUTSIDE or (isinstance(tag, str) and tag[:2] in {BEGIN, INSIDE} and len(tag) > 2)


def kind_of(tag: str) -> str:
    """The entity type of a tag: ``PER`` for ``B-PER`` and ``I-PER`` (and for a bare ``PER``)."""
    return tag[2:] if tag[:2] in {BEGIN, INSIDE} else tag


def begin(kind: str) -> str:
    return BEGIN + kind


def inside(tag: str) -> str:
    """The tag of a word's later pieces: ``I-X`` within an entity of X, ``O`` outside."""
    return OUTSIDE if tag == OUTSIDE else INSIDE + kind_of(tag)


def tag_set(kinds: Iterable[str]) -> list[str]:
    """Every tag of these entity types, ``O`` first: a model's labels."""
    return [OUTSIDE, *[tag for kind in sorted(set(kinds)) for tag in (begin(kind), INSIDE + kind)]]


def group(words: Sequence[tuple[int, int, str]]) -> list[TaggedSpan]:
    """The entities of tagged words (``(start, end, tag)`` each, in order)."""
    spans: list[TaggedSpan] = []
    open_span: TaggedSpan | None = None
    for index, (start, end, tag) in enumerate(words):
        if tag != OUTSIDE and tag.startswith(INSIDE) and open_span is not None and open_span.kind == kind_of(tag):
            open_span = open_span._replace(end=end, words=range(open_span.words.start, index + 1))
            continue
        if open_span is not None:
            spans.append(open_span)
        open_span = None if tag == OUTSIDE else TaggedSpan(start, end, kind_of(tag), range(index, index + 1))
    if open_span is not None:
        spans.append(open_span)
    return spans
