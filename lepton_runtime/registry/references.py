"""Model references (``name``, ``name@version``, ``name@alias``) and names that keep paths inside the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lepton_runtime.errors import InputIssue, InvalidReferenceError

# Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit (no '/': a name is one path part).
MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Aliases start with a letter so they can never be confused with a version number.
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A reference: a name, then nothing, @ and a version (3, or v3), or @ and an alias. The OpenAPI document declares
# these patterns as the server checks them (ASCII digits only; a whole string, no trailing newline).
REFERENCE_PATTERN = re.compile(
    MODEL_NAME_PATTERN.pattern.removesuffix("$") + "(@(v?[0-9]*[1-9][0-9]*|" + ALIAS_PATTERN.pattern[1:-1] + "))?$"
)
MAX_NAME_CHARS = 64


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model name, else raise InvalidReferenceError saying why."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.fullmatch(name):
        raise InvalidReferenceError(
            f"model name {name!r} is not allowed: use 1-{MAX_NAME_CHARS} lower-case letters, digits,"
            " '.', '_' or '-', starting with a letter or digit (no '/')",
            issues=[InputIssue("model", "invalid model name", f"pattern {MODEL_NAME_PATTERN.pattern}")],
        )
    return name


def validate_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias name (e.g. production, staging), else raise."""
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidReferenceError(
            f"alias {alias!r} is not allowed: use a lower-case letter then up to 31 letters, digits,"
            " '_' or '-' (e.g. production, staging)",
            issues=[InputIssue("alias", "invalid alias", f"pattern {ALIAS_PATTERN.pattern}")],
        )
    return alias


@dataclass(frozen=True)
class ModelReference:
    """A parsed reference: a name, and at most one of an exact version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelReference:
        """Parse ``name``, ``name@3`` or ``name@production``; raise InvalidReferenceError if malformed."""
        if not isinstance(text, str) or not text:
            raise InvalidReferenceError("model reference is empty: give name, name@version or name@alias")
        name, sep, selector = text.partition("@")
        validate_model_name(name)
        if not sep:
            return cls(name)
        if selector.isascii() and selector.isdigit() and int(selector) > 0:
            return cls(name, version=int(selector))
        if selector.isascii() and selector.startswith("v") and selector[1:].isdigit() and int(selector[1:]) > 0:
            return cls(name, version=int(selector[1:]))
        return cls(name, alias=validate_alias(selector))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
