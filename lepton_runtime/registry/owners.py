"""Who owns a model name, and what other tenants may do with it: the rules, and the owner record they read.

A name belongs to the tenant that first published it (``owner.json`` beside its versions, on disk or in the object
store). Only that tenant publishes new versions and moves or deletes them; every tenant may *use* a model its owner
marked shared, the owner always may, and the operator tenant may do anything. Models published before names had
owners belong to the default tenant and stay shared, as every model was then.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from lepton_runtime.constants import DEFAULT_TENANT
from lepton_runtime.errors import ForbiddenError

OWNER_FILE = "owner.json"


@dataclass(frozen=True)
class ModelOwner:
    """The tenant a model name belongs to, and whether other tenants may run it."""

    tenant: str
    shared: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, raw: str | bytes) -> ModelOwner:
        record = json.loads(raw)  # what to_json wrote (fields it does not know are left out)
        owner = cls(**{field.name: record[field.name] for field in fields(cls) if field.name in record})
        return cls(str(owner.tenant), bool(owner.shared))


# The owner of a model published before names had owners.
LEGACY_OWNER = ModelOwner(DEFAULT_TENANT, shared=True)


def check_publisher(name: str, owner: ModelOwner | None, tenant: str) -> None:
    """Raise ForbiddenError unless ``tenant`` may publish a version of ``name`` (new, or its own)."""
    if owner is not None and owner.tenant != tenant:
        raise ForbiddenError(
            f"model {name!r} belongs to tenant {owner.tenant!r}: only its owner publishes new versions of it (a model"
            f" name belongs to the tenant that first published it); publish under another name"
        )


def check_administrator(name: str, owner: ModelOwner, tenant: str, operator_tenant: str, action: str) -> None:
    """Raise ForbiddenError unless ``tenant`` may ``action`` (promote, roll back, delete, share) ``name``."""
    if tenant not in (owner.tenant, operator_tenant):
        raise ForbiddenError(
            f"model {name!r} belongs to tenant {owner.tenant!r}: only its owner's admin tokens (or the operator's) may"
            f" {action} it"
        )


def may_use(owner: ModelOwner, tenant: str, operator_tenant: str) -> bool:
    """Whether ``tenant`` may run the model for inference: its own, a shared one, or any for the operator."""
    return owner.shared or tenant in (owner.tenant, operator_tenant)
