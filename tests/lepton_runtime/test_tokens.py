"""API tokens: bare tokens (tenant default, every scope), TENANT:SCOPES:TOKEN entries, digests instead of tokens."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.tokens import ALL_SCOPES, find_caller, parse_tokens


def test_entries_name_a_tenant_and_scopes_and_may_be_digests() -> None:
    digest = hashlib.sha256(b"s3cret-of-b").hexdigest()
    tokens = parse_tokens(
        [SecretStr(entry) for entry in ("legacy-token", "a:submit+read:tok-a", f"b:*:sha256:{digest}")]
    )
    legacy, tenant_a, tenant_b = (find_caller(tokens, secret) for secret in ("legacy-token", "tok-a", "s3cret-of-b"))
    assert legacy is not None and legacy.tenant == "default" and legacy.scopes == ALL_SCOPES
    assert tenant_a is not None and tenant_a.tenant == "a" and tenant_a.scopes == {"submit", "read"}
    assert tenant_b is not None and tenant_b.tenant == "b" and tenant_b.scopes == ALL_SCOPES
    assert find_caller(tokens, "tok-") is None and find_caller(tokens, f"sha256:{digest}") is None
    assert all(b"tok-a" not in token.digest for token in tokens), "only digests are kept"


def test_a_token_with_colons_that_is_no_entry_stays_a_bare_token() -> None:
    (token,) = parse_tokens([SecretStr("ab:cd:ef")])  # "cd" is no scope list
    assert token.caller.tenant == "default" and find_caller([token], "ab:cd:ef") is not None


def test_bad_entries_are_refused_without_showing_the_token() -> None:
    with pytest.raises(InvalidInputError, match=r"LEPTON_API_TOKENS\[0\]: the token is empty"):
        parse_tokens([SecretStr("a:read:")])
    with pytest.raises(InvalidInputError, match="tenant") as refused:
        parse_tokens([SecretStr("bad tenant:read:very-secret")])
    assert "very-secret" not in str(refused.value)
