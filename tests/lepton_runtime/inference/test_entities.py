"""Entity extraction in the engine: spans that are exactly the original text whatever its characters (a property
test), long texts read in overlapping windows with each entity kept once, provenance, refusals."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_runtime.errors import InvalidInputError, WrongTaskError
from lepton_runtime.inference import Engine
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion

pytestmark = pytest.mark.slow

# Words with accents, emoji, CJK and punctuation, glued by odd whitespace: what real texts throw at offsets.
WORDS = st.sampled_from(
    ["Paris", "Zoë", "Müller", "New", "York", "東京", "São", "Paulo", "😀", "I.B.M.", "don't", "e-mail", "the",
     "Åsa", "naïve", "北京市", "x", "Ω", "C++", "(ACME)", "1,000", "Straße", "👩‍💻", "Dvořák", "al-Qāhira"]
)  # fmt: skip
SPACES = st.sampled_from([" ", "  ", "\t", "\n", " \u00a0", "\u3000", "\r\n"])


@st.composite
def odd_texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(WORDS, min_size=1, max_size=60))
    text = draw(st.sampled_from(["", " ", "\n"]))
    for word in words:
        text += word + draw(SPACES)
    return text if text.strip() else "Paris"


@pytest.fixture(scope="module")
def engine(published_entities: ModelVersion) -> Engine:
    return Engine(published_entities.path, intra_op_threads=1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(odd_texts(), min_size=1, max_size=4))
def test_every_entity_is_exactly_its_span_of_the_original_text(engine: Engine, texts: list[str]) -> None:
    for text, entities in zip(texts, engine.entities(texts), strict=True):
        previous_end = 0
        for entity in entities:
            assert entity.text == text[entity.start : entity.end] and entity.text.strip() == entity.text
            assert previous_end <= entity.start < entity.end <= len(text)  # in order, never overlapping
            assert entity.label in {"PER", "LOC", "ORG"} and 0 < entity.score <= 1
            previous_end = entity.end


def test_a_long_text_read_in_windows_finds_each_entity_once(
    published_entities: ModelVersion, banking: LabelledTexts
) -> None:
    text = " ".join(banking.texts[:40])  # about 500 tokens: windows of 32 tokens overlapping by 8
    windowed = Engine(published_entities.path, intra_op_threads=1).entities([text])[0]
    whole = Engine(published_entities.path, intra_op_threads=1, max_sequence_length=512).entities([text])[0]
    assert len(whole) > 20
    spans = [(e.start, e.end) for e in windowed]
    assert len(spans) == len(set(spans)) and spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no entity twice, even in part
    # labels depend on tokens alone here, so the windows see what one long window sees; entities of up to
    # two short words sit inside some window's own part whole
    short = {(e.start, e.end, e.label) for e in whole if len(e.text) <= 12}
    assert short <= {(e.start, e.end, e.label) for e in windowed}


def test_entities_carry_provenance_and_refuse_what_they_should(
    engine: Engine, published_entities: ModelVersion
) -> None:
    (result,) = engine.run(["Paris and Zoë Müller"])
    assert result.model.model == "tiny-ner" and result.model.version == 1
    assert result.as_dict()["entities"] == [entity.as_dict() for entity in result.entities]
    assert published_entities.manifest.task == "token-classification"
    with pytest.raises(InvalidInputError, match=r"texts\[1\]"):
        engine.entities(["fine", ""])
    with pytest.raises(WrongTaskError, match="is an entity extractor, not a text classifier"):
        engine.classify(["Paris"])
