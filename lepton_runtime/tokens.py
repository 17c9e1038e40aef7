"""API tokens: the tenant a bearer token speaks for and the scopes it holds, kept and compared as SHA-256 digests.

``LEPTON_API_TOKENS`` is a JSON list; each entry is either a bare token (tenant ``default``, every scope:
what earlier versions took) or ``TENANT:SCOPES:TOKEN``, where SCOPES is ``submit+read`` and the like or
``*``. TOKEN may be ``sha256:<hex>``, the digest of the token, so that the environment need not hold the
token itself. Tokens are hashed when the API starts; a presented token is hashed and compared with
every digest in constant time; neither is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.jobs.lanes import DEFAULT_TENANT, check_tenant

# What a token may do: send work (classify, bulk jobs, retries, cancels), read results and models, train,
# and administer (promote, roll back and delete models, replay dead letters).
SCOPES = ("submit", "read", "train", "admin")
ALL_SCOPES = frozenset(SCOPES)
# Hex digits of a token's SHA-256 shown in the audit trail: enough to tell tokens apart, too few to matter.
FINGERPRINT_HEX = 12
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: its tenant (quotas, shares, metrics, what it owns), its scopes, and the token's
    fingerprint for the audit trail (the first hex digits of its SHA-256; never the token)."""

    tenant: str
    scopes: frozenset[str]
    fingerprint: str = "anonymous"


@dataclass(frozen=True)
class ApiToken:
    digest: bytes  # SHA-256 of the token
    caller: Caller


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(entries: Iterable[SecretStr]) -> list[ApiToken]:
    """The tokens of LEPTON_API_TOKENS, hashed; a malformed entry raises InvalidInputError (without the token)."""
    tokens = []
    for position, entry in enumerate(entries):
        value = entry.get_secret_value()
        tenant, scopes, secret = DEFAULT_TENANT, ALL_SCOPES, value
        parts = value.split(":", 2)
        if len(parts) == 3 and _is_scope_list(parts[1]):
            tenant, scopes, secret = check_tenant(parts[0]), _scopes(parts[1]), parts[2]
        if not secret:
            raise InvalidInputError(f"LEPTON_API_TOKENS[{position}]: the token is empty")
        match = _DIGEST.fullmatch(secret)
        digest = bytes.fromhex(match.group(1)) if match else digest_of(secret)
        tokens.append(ApiToken(digest, Caller(tenant, scopes, f"sha256:{digest.hex()[:FINGERPRINT_HEX]}")))
    return tokens


def find_caller(tokens: Iterable[ApiToken], presented: str) -> Caller | None:
    """The caller of the token that hashes like ``presented`` (every digest compared, in constant time)."""
    digest = digest_of(presented)
    found = None
    for token in tokens:
        if hmac.compare_digest(digest, token.digest):
            found = token.caller
    return found


def _is_scope_list(text: str) -> bool:
    return text == "*" or all(part in ALL_SCOPES for part in text.split("+"))


def _scopes(text: str) -> frozenset[str]:
    return ALL_SCOPES if text == "*" else frozenset(text.split("+"))
