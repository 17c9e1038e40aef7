"""Entity training on tagged sentences: both input forms and their errors, labels on every piece, seqeval figures
per epoch, and a run end to end (fine-tune, export, the served model scored on raw text)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from export.entities import gold_text_and_spans, span_f1_of
from export.entity_run import train_and_publish_entities
from lepton_runtime.errors import InvalidInputError
from lepton_runtime.inference import Engine
from lepton_runtime.labelled_data import TaggedSentences, read_tagged
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.training import TrainingConfig

PEOPLE = ["Anna Schmidt", "Kofi Mensah", "Li Wei", "María García", "John Smith", "Aiko Tanaka", "Omar Haddad"]
PLACES = ["Berlin", "Accra", "Shanghai", "Madrid", "Boston", "Osaka", "Beirut", "New York", "São Paulo"]
ORGS = ["Siemens", "Acme Corp", "Lufthansa", "Reuters", "Toyota", "the United Nations"]
FRAMES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} flew to {LOC} on Monday .",
    "{ORG} opened an office in {LOC} .",
    "Yesterday {PER} met {PER2} at {ORG} .",
    "In {LOC} , {ORG} hired {PER} .",
]


def synthetic(count: int, seed: int) -> TaggedSentences:
    """Template sentences with people, places and organisations, tagged BIO per word."""
    rng = random.Random(seed)
    words_out, tags_out = [], []
    for _ in range(count):
        words, tags = [], []
        for part in rng.choice(FRAMES).split():
            kind = {"{PER}": "PER", "{PER2}": "PER", "{LOC}": "LOC", "{ORG}": "ORG"}.get(part)
            if kind is None:
                words.append(part)
                tags.append("O")
                continue
            name = rng.choice({"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}[kind]).split()
            words += name
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
        words_out.append(words)
        tags_out.append(tags)
    return TaggedSentences(words_out, tags_out, "<synthetic>")


def write_synthetic(path: Path, count: int, seed: int) -> Path:
    """``synthetic`` sentences as a CoNLL-style JSONL file (tokens and tags per line)."""
    tagged = synthetic(count, seed)
    rows = zip(tagged.words, tagged.tags, strict=True)
    path.write_text("".join(json.dumps({"tokens": words, "tags": tags}) + "\n" for words, tags in rows))
    return path


def test_both_input_forms_read_to_the_same_words_and_tags(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [
        {"tokens": ["Anna", "Schmidt", "lives", "in", "Berlin"], "tags": ["B-PER", "I-PER", "O", "O", "B-LOC"]},
        {"text": "Anna  Schmidt lives in Berlin", "spans": [{"start": 0, "end": 13, "label": "PER"},
                                                            {"start": 23, "end": 29, "label": "LOC"}]},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = read_tagged(path)
    assert data.words[0] == data.words[1] and data.tags[0] == data.tags[1]
    assert data.labels() == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert gold_text_and_spans(data.words[0], data.tags[0]) == (
        "Anna Schmidt lives in Berlin",
        {(0, 12, "PER"), (22, 28, "LOC")},
    )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"tokens": ["a", "b"], "tags": ["O"]}, "same length"),
        ({"tokens": ["a"], "tags": ["PER"]}, "O, B-TYPE or I-TYPE"),
        ({"label": "x"}, "tokens"),
    ],
)
def test_bad_rows_are_refused_naming_the_line(tmp_path: Path, row: dict[str, object], problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"tokens": ["ok"], "tags": ["O"]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InvalidInputError, match=f"line 2: .*{problem}"):
        read_tagged(path)


@pytest.mark.slow
def test_a_run_learns_entities_and_the_served_model_finds_them_in_raw_text(tmp_path: Path, tiny_base: Path) -> None:
    epochs: list[float] = []
    validation = synthetic(80, seed=2)
    golden = tmp_path / "validation.jsonl"
    rows = zip(validation.words, validation.tags, strict=True)
    golden.write_text("".join(json.dumps({"tokens": words, "tags": tags}) + "\n" for words, tags in rows))
    outcome = train_and_publish_entities(
        synthetic(400, seed=1), validation, name="ner", registry=ModelRegistry(tmp_path / "models"),
        config=TrainingConfig(epochs=6, learning_rate=3e-3, head_learning_rate=3e-3, batch_size=16, max_length=64),
        checkpoint=tmp_path / "checkpoint", base=tiny_base, golden=golden,
        on_epoch=lambda e: epochs.append(e.validation_f1),
    )  # fmt: skip
    metrics = outcome.metrics
    assert len(epochs) >= 2 and max(epochs) == metrics["validation_entity_f1"] > 0.8
    assert set(metrics["per_type"]) == {"PER", "LOC", "ORG"}
    assert metrics["validation_span"]["f1"] > 0.7 and outcome.promoted and outcome.version == "ner@1"
    manifest = ModelRegistry(tmp_path / "models").resolve("ner@1").manifest
    assert manifest.task == "token-classification" and manifest.variants["int8"].verified
    assert manifest.variants["int8"].gate["f1_drop_points"] <= 1.0  # the entity gate ran on the labelled file
    engine = Engine.load("ner@production", registry=tmp_path / "models")
    text = "Yesterday  Kofi Mensah met María García at Lufthansa ."
    found = {(e.text, e.label) for e in engine.entities([text])[0]}
    assert ("Kofi Mensah", "PER") in found or ("Lufthansa", "ORG") in found
    assert span_f1_of(engine, synthetic(40, seed=3))["f1"] > 0.7
