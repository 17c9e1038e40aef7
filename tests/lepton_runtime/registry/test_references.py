import pytest

from lepton_runtime.errors import InvalidReferenceError
from lepton_runtime.registry import ModelReference


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
        "a..b",
        "x" * 65,
    ],
)
def test_refuses_unsafe_or_malformed_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        ModelReference.parse(text)
    assert caught.value.code == "invalid_reference"
