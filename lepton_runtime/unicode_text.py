"""Text that JSON allows but UTF-8 does not (lone surrogates): found, named, and carried without breaking anything.

JSON may spell a lone surrogate (``"\\ud800"``) and Python decodes it into a ``str`` that no UTF-8 encoder takes.
Such a text is bad input, answered as an item error where it is a text, and refused where it is an id or a label;
``dumps`` lets it travel to where it is judged (Redis, dead letters) without the encoding failing on the way.
"""

from __future__ import annotations

import json
from typing import Any


def lone_surrogate(text: str) -> int | None:
    """The index of the first character UTF-8 cannot encode (a lone surrogate), or None when there is none."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def surrogate_problem(text: str) -> str | None:
    """What is wrong with ``text`` for UTF-8, in words that say how to fix it; None when nothing is."""
    index = lone_surrogate(text)
    if index is None:
        return None
    return (
        f"holds a lone surrogate (U+{ord(text[index]):04X} at character {index}), which is not a Unicode character "
        "and cannot be encoded as UTF-8; the text was probably cut inside a character or decoded wrongly: remove it"
    )


def dumps(value: Any) -> str:
    """JSON for Redis and files: UTF-8 as it is where it can be, ``\\uXXXX`` escapes when a string holds a lone
    surrogate (``json.loads`` gives the same value back either way)."""
    encoded = json.dumps(value, ensure_ascii=False)
    return encoded if lone_surrogate(encoded) is None else json.dumps(value)
