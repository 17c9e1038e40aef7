"""The entity task's export gates: entity F1 on character spans of raw text, the figure a user of ``entities()``
gets, and the int8 gate on it (at most 1 point below fp32 on labelled sentences)."""

from __future__ import annotations

from pathlib import Path

from export.quality import FLOAT_SLACK, GateResult
from lepton_runtime import bio, constants
from lepton_runtime.inference.engine import Engine
from lepton_runtime.labelled_data import TaggedSentences


def gold_text_and_spans(words: list[str], tags: list[str]) -> tuple[str, set[tuple[int, int, str]]]:
    """The sentence as its words joined by single spaces, and its gold entities as character spans."""
    tagged, position = [], 0
    for word, tag in zip(words, tags, strict=True):
        tagged.append((position, position + len(word), tag))
        position += len(word) + 1
    return " ".join(words), {(span.start, span.end, span.kind) for span in bio.group(tagged)}


def span_f1_of(engine: Engine, data: TaggedSentences) -> dict[str, float]:
    """Micro precision, recall and F1 of ``engine.entities`` on the raw sentences: exact character span and type."""
    texts, gold = [], []
    for words, tags in zip(data.words, data.tags, strict=True):
        text, spans = gold_text_and_spans(words, tags)
        texts.append(text)
        gold.append(spans)
    found = engine.entities(texts)
    predicted = [{(e.start, e.end, e.label) for e in entities} for entities in found]
    matched = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    precision = matched / max(1, sum(len(p) for p in predicted))
    recall = matched / max(1, sum(len(g) for g in gold))
    f1 = 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def entity_gate(reference: dict[str, float], candidate: dict[str, float]) -> GateResult:
    """Pass a reduced-precision variant whose span F1 is at most INT8_ENTITY_MAX_F1_DROP_POINTS below fp32's."""
    limit = constants.INT8_ENTITY_MAX_F1_DROP_POINTS
    drop_points = (reference["f1"] - candidate["f1"]) * 100
    figures = {"fp32_span_f1": reference["f1"], "span_f1": candidate["f1"], "f1_drop_points": round(drop_points, 3),
               "max_f1_drop_points": limit}  # fmt: skip
    reason = (
        f"span F1 {candidate['f1']:.4f} vs fp32 {reference['f1']:.4f} (drop {drop_points:.2f} points, limit {limit})"
    )
    return GateResult(drop_points <= limit + FLOAT_SLACK, figures, reason)


def staged_span_f1(directory: Path, onnx_file: str, data: TaggedSentences, max_length: int) -> dict[str, float]:
    """Span F1 of one ONNX file of a staged model directory, through the real Engine."""
    return span_f1_of(Engine(directory, onnx_file=onnx_file, warm=False, max_sequence_length=max_length), data)
