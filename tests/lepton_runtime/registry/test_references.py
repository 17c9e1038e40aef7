import pytest

from lepton_runtime.errors import InvalidReferenceError
from lepton_runtime.registry import ModelReference
from lepton_runtime.registry.references import REFERENCE_PATTERN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sentiment", ModelReference("sentiment")),
        ("sentiment@3", ModelReference("sentiment", version=3)),
        ("sentiment@v3", ModelReference("sentiment", version=3)),
        ("sentiment@production", ModelReference("sentiment", alias="production")),
        ("bank-77.v2@staging", ModelReference("bank-77.v2", alias="staging")),
    ],
)
def test_parses_names_versions_and_aliases(text: str, expected: ModelReference) -> None:
    assert ModelReference.parse(text) == expected
    assert str(ModelReference.parse(text)) == text.replace("@v3", "@3")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../../etc",
        "..",
        "a/b",
        "/abs",
        "Sentiment",
        "name@",
        "name@0",
        "name@prod!",
        "name@Prod",
        ".hidden",
        "name\n",
        "name@\u0663",  # an Arabic-Indic digit three: versions are ASCII digits
        "x" * 65,
    ],
)
def test_refuses_unsafe_or_malformed_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        ModelReference.parse(text)
    assert caught.value.code == "invalid_reference"


@pytest.mark.parametrize(
    "text", ["a", "a..b", "sentiment@3", "sentiment@v3", "sentiment@production", "", "a/b", "name@0", "name\n", "A"]
)
def test_the_declared_pattern_is_the_rule_the_parser_keeps(text: str) -> None:
    """The OpenAPI document declares REFERENCE_PATTERN: a client that follows it is never refused for the name."""
    try:
        ModelReference.parse(text)
        parsed = True
    except InvalidReferenceError:
        parsed = False
    assert parsed == bool(REFERENCE_PATTERN.fullmatch(text))
