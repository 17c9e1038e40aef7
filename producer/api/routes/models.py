"""``/v1/models``: published versions with their metrics and variants, aliases, and promotion."""

from __future__ import annotations

from fastapi import APIRouter

from producer.api.dependencies import SECURED, Client
from producer.api.errors import error_responses
from producer.api.schemas import ModelOut, ModelsResponse, ModelVersionOut, PromoteRequest, PromoteResponse

router = APIRouter(tags=["models"], dependencies=SECURED, responses=error_responses(401, 404, 422, 500))


@router.get("/v1/models", response_model=ModelsResponse)
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


@router.post("/v1/models/{name}/promote", response_model=PromoteResponse)
def promote_model(name: str, body: PromoteRequest, client: Client) -> PromoteResponse:
    """Point an alias (default production) at a version; workers resolve new jobs to it."""
    version = client.registry.promote(f"{name}@{body.version}", body.alias)
    return PromoteResponse(name=name, alias=body.alias, version=version.version)
