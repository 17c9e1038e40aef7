"""``/v1/models``: published versions with their metrics and variants, aliases; promotion, rollback and deletion
(``admin`` scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from producer.api.dependencies import ADMIN, READ, Client
from producer.api.errors import error_responses
from producer.api.schemas import (
    DeletedVersion,
    ModelOut,
    ModelsResponse,
    ModelVersionOut,
    PromoteRequest,
    PromoteResponse,
    RollbackRequest,
)

router = APIRouter(tags=["models"], responses=error_responses(401, 403, 404, 422, 500))


@router.get("/v1/models", response_model=ModelsResponse, dependencies=READ)
def models(client: Client) -> ModelsResponse:
    """Published models: versions (with their metrics and variants) and aliases."""
    registry = client.registry
    return ModelsResponse(
        models=[
            ModelOut(
                name=name,
                aliases=registry.aliases(name),
                versions=[
                    ModelVersionOut(
                        version=v.version,
                        reference=v.reference,
                        variants=sorted(v.manifest.variants),
                        metrics={k: m for k, m in v.manifest.metrics.items() if k != "per_class"},
                        created_at=v.manifest.created_at,
                    )
                    for v in registry.versions(name)
                ],
            )
            for name in registry.list_models()
        ]
    )


@router.post("/v1/models/{name}/promote", response_model=PromoteResponse, dependencies=ADMIN)
def promote_model(name: str, body: PromoteRequest, client: Client) -> PromoteResponse:
    """Point an alias (default production) at a version; workers resolve new jobs to it."""
    version = client.registry.promote(f"{name}@{body.version}", body.alias)
    return PromoteResponse(name=name, alias=body.alias, version=version.version)


@router.post("/v1/models/{name}/rollback", response_model=PromoteResponse, dependencies=ADMIN)
def rollback_model(name: str, body: RollbackRequest, client: Client) -> PromoteResponse:
    """Point an alias (default production) back at the version it named before its last move."""
    version = client.registry.rollback(name, body.alias)
    return PromoteResponse(name=name, alias=body.alias, version=version.version)


@router.delete("/v1/models/{name}/versions/{version}", response_model=DeletedVersion, dependencies=ADMIN)
def delete_version(
    name: str,
    version: int,
    client: Client,
    force: Annotated[bool, Query(description="Also drop the aliases that point at it.")] = False,
) -> DeletedVersion:
    """Delete one version; refused (422) while an alias points at it, unless ``force``."""
    deleted = client.registry.delete(f"{name}@{version}", force=force)
    return DeletedVersion(name=name, version=deleted.version)
