"""``/v1/models``: published versions with their metrics and variants, aliases and owners; promotion, rollback,
deletion and sharing (``admin`` scope of the model's owner, or of the operator tenant)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from lepton_runtime.registry.owners import LEGACY_OWNER, may_use
from producer.api.dependencies import ADMIN, READ, Client, CurrentCaller, Settings
from producer.api.errors import error_responses
from producer.api.schemas import (
    NAME_RULES,
    DeletedVersion,
    ModelOut,
    ModelOwnerOut,
    ModelsResponse,
    ModelVersionOut,
    PromoteRequest,
    PromoteResponse,
    RollbackRequest,
    ShareRequest,
)
from producer.api.tenancy import administered_model, audited, is_operator

router = APIRouter(tags=["models"], responses=error_responses(401, 403, 404, 422, 500))
ModelName = Annotated[str, Path(description="A model name.", **NAME_RULES)]


@router.get("/v1/models", response_model=ModelsResponse, dependencies=READ)
def models(
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    tenant: Annotated[str | None, Query(description="The operator's filter: models this tenant owns.")] = None,
) -> ModelsResponse:
    """The models the caller may run (its own and shared ones; the operator: all): versions (with their metrics and
    variants), aliases and owners."""
    registry = client.registry
    listed = []
    for name in registry.list_models():
        owner = registry.owner(name) or LEGACY_OWNER
        visible = may_use(owner, caller.tenant, settings.operator_tenant)
        if not visible or (tenant is not None and is_operator(caller, settings) and owner.tenant != tenant):
            continue
        versions = [
            ModelVersionOut(
                version=v.version,
                reference=v.reference,
                variants=sorted(v.manifest.variants),
                metrics={k: m for k, m in v.manifest.metrics.items() if k != "per_class"},
                created_at=v.manifest.created_at,
            )
            for v in registry.versions(name)
        ]
        aliases = registry.aliases(name)
        listed.append(ModelOut(name=name, owner=owner.tenant, shared=owner.shared, aliases=aliases, versions=versions))
    return ModelsResponse(models=listed)


@router.post(
    "/v1/models/{name}/promote", response_model=PromoteResponse, dependencies=ADMIN, responses=error_responses(409)
)
def promote_model(
    name: ModelName, body: PromoteRequest, settings: Settings, client: Client, caller: CurrentCaller
) -> PromoteResponse:
    """Point an alias (default production) at a version; workers resolve new jobs to it."""
    administered_model(client, settings, caller, name, "promote")
    version = client.registry.promote(f"{name}@{body.version}", body.alias)
    audited(client, settings, caller, "promote", version.reference, f"alias {body.alias}")
    return PromoteResponse(name=name, alias=body.alias, version=version.version)


@router.post(
    "/v1/models/{name}/rollback", response_model=PromoteResponse, dependencies=ADMIN, responses=error_responses(409)
)
def rollback_model(
    name: ModelName, body: RollbackRequest, settings: Settings, client: Client, caller: CurrentCaller
) -> PromoteResponse:
    """Point an alias (default production) back at the version it named before its last move (409 when it named
    none before)."""
    administered_model(client, settings, caller, name, "rollback")
    version = client.registry.rollback(name, body.alias)
    audited(client, settings, caller, "rollback", version.reference, f"alias {body.alias}")
    return PromoteResponse(name=name, alias=body.alias, version=version.version)


@router.delete(
    "/v1/models/{name}/versions/{version}",
    response_model=DeletedVersion,
    dependencies=ADMIN,
    responses=error_responses(409),
)
def delete_version(
    name: ModelName,
    version: Annotated[int, Path(ge=1)],
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    force: Annotated[bool, Query(description="Also drop the aliases that point at it.")] = False,
) -> DeletedVersion:
    """Delete one version; refused (409) while an alias points at it, unless ``force``."""
    administered_model(client, settings, caller, name, "delete")
    deleted = client.registry.delete(f"{name}@{version}", force=force)
    audited(client, settings, caller, "delete", deleted.reference, "forced" if force else "")
    return DeletedVersion(name=name, version=deleted.version)


@router.put("/v1/models/{name}/sharing", response_model=ModelOwnerOut, dependencies=ADMIN)
def share_model(
    name: ModelName, body: ShareRequest, settings: Settings, client: Client, caller: CurrentCaller
) -> ModelOwnerOut:
    """Let every tenant run the model (``shared: true``), or only its owner and the operator (``false``)."""
    administered_model(client, settings, caller, name, "share")
    owner = client.registry.share(name, body.shared)
    audited(client, settings, caller, "share", name, "every tenant may run it" if body.shared else "private")
    return ModelOwnerOut(name=name, owner=owner.tenant, shared=owner.shared)
