"""BIO tags read one way everywhere: where an entity begins and ends, what a word's later pieces are tagged, and the
labels of a model; the served model's grouping and the gold spans of labelled sentences agree on the same tags."""

from __future__ import annotations

import numpy as np

from export.entities import gold_text_and_spans
from lepton_runtime import bio
from lepton_runtime.inference.tasks.token_classification import group_words


def test_entities_begin_continue_and_end_where_the_tags_say() -> None:
    words = [(0, 3, "B-PER"), (4, 8, "I-PER"), (9, 11, "O"), (12, 17, "I-LOC"), (18, 22, "B-LOC"), (23, 27, "I-ORG")]
    spans = [(span.start, span.end, span.kind, list(span.words)) for span in bio.group(words)]
    # I- continues only an open entity of its own type; elsewhere it begins one
    assert spans == [(0, 8, "PER", [0, 1]), (12, 17, "LOC", [3]), (18, 22, "LOC", [4]), (23, 27, "ORG", [5])]
    assert bio.group([(0, 2, "MISC"), (3, 5, "I-MISC")])[0].end == 5  # a bare label counts as B-


def test_tags_of_later_pieces_the_tag_set_and_what_training_data_may_spell() -> None:
    assert [bio.inside(tag) for tag in ("B-PER", "I-PER", "O")] == ["I-PER", "I-PER", "O"]
    assert bio.tag_set(["PER", "LOC", "PER"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert [bio.is_tag(tag) for tag in ("O", "B-X", "I-X", "B-", "X", None)] == [True, True, True, False, False, False]


def test_the_served_grouping_and_the_gold_spans_agree_on_the_same_tags() -> None:
    words, tags = ["Zoë", "Müller", "flew", "to", "São", "Paulo"], ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"]
    text, gold = gold_text_and_spans(words, tags)
    starts = [text.index(word) for word in words]
    labelled = [[start, start + len(word), tag] for start, word, tag in zip(starts, words, tags, strict=True)]
    served = group_words([[*word, 0.5 + index / 10] for index, word in enumerate(labelled)], text)
    assert {(e.start, e.end, e.label) for e in served} == gold == {(0, 10, "PER"), (19, 28, "LOC")}
    assert [e.text for e in served] == ["Zoë Müller", "São Paulo"]
    assert served[0].score == np.mean([0.5, 0.6])
