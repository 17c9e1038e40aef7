"""Input rules of a classify request: what a text must be, and the limits it must stay within."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.unicode_text import surrogate_problem

# Issues listed in full in an error message; the rest are counted and kept on the exception.
MAX_ISSUES_IN_MESSAGE = 10


@dataclass(frozen=True)
class TextLimits:
    """The length policy: texts per request, characters per text, and what to do past the token limit."""

    max_items: int
    max_text_chars: int
    max_sequence_length: int
    on_overflow: str = "truncate"  # or "error"


def check_request(texts: Any, limits: TextLimits) -> list[Any]:
    """Check the request as a whole (a non-empty list within the item limit) and return it as a list."""
    if isinstance(texts, str | bytes) or not isinstance(texts, list | tuple):
        raise InvalidInputError(
            f"texts: expected a list of strings, got {type(texts).__name__}; wrap a single text in a list",
            issues=[InputIssue("texts", f"expected a list, got {type(texts).__name__}")],
        )
    if not texts:
        raise InvalidInputError(
            "texts: the list is empty; send at least one text",
            issues=[InputIssue("texts", "empty list", "at least 1 item")],
        )
    if len(texts) > limits.max_items:
        raise InvalidInputError(
            f"texts: {len(texts)} items is over the limit of {limits.max_items} per request;"
            " split the request or submit a bulk job",
            issues=[InputIssue("texts", f"{len(texts)} items", f"{limits.max_items} items")],
        )
    return list(texts)


def check_text(index: int, text: Any, limits: TextLimits) -> InputIssue | None:
    """Return the problem with one text, or None if it may be classified."""
    field = f"texts[{index}]"
    if not isinstance(text, str):
        return InputIssue(field, f"expected a string, got {type(text).__name__}")
    if not text.strip():
        return InputIssue(field, "text is empty or only whitespace", "at least 1 visible character")
    if len(text) > limits.max_text_chars:
        return InputIssue(field, f"text has {len(text)} characters", f"{limits.max_text_chars} characters")
    if not any(character.isprintable() and not character.isspace() for character in text):
        return InputIssue(
            field, "text has no visible character (only zero-width, format or control characters)",
            "at least 1 visible character",
        )  # fmt: skip
    if "\x00" in text:
        return InputIssue(field, "text contains a NUL character (\\x00); remove it")
    if (problem := surrogate_problem(text)) is not None:
        return InputIssue(field, f"text {problem}")
    return None


def overflow_issue(index: int, limits: TextLimits) -> InputIssue:
    """The issue for a text longer than the model's token limit under the 'error' policy."""
    return InputIssue(
        f"texts[{index}]",
        "text is longer than the model's token limit (policy: error; use on_overflow='truncate' to cut it)",
        f"{limits.max_sequence_length} tokens",
    )


def raise_for_issues(issues: list[InputIssue], total: int) -> None:
    """Raise one InvalidInputError naming every bad item (the first few in the message)."""
    shown = "; ".join(str(issue) for issue in issues[:MAX_ISSUES_IN_MESSAGE])
    more = f"; and {len(issues) - MAX_ISSUES_IN_MESSAGE} more" if len(issues) > MAX_ISSUES_IN_MESSAGE else ""
    raise InvalidInputError(
        f"{len(issues)} of {total} texts are invalid: {shown}{more}."
        " Fix them, or pass errors='return' to get predictions for the valid ones",
        issues=issues,
    )
