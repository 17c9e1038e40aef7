"""The app factory of the HTTP API: settings and the client in ``app.state``, error handlers, the body limit,
one router per resource, and the docs pages with their assets served here."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from lepton_runtime import __version__
from lepton_runtime.errors import InvalidInputError
from lepton_runtime.exposure import is_loopback
from lepton_runtime.settings import LeptonSettings, load_settings
from lepton_runtime.tokens import parse_tokens
from producer.api.body_limit import BodyLimit
from producer.api.docs_pages import DocsContentSecurity
from producer.api.errors import install_error_handlers
from producer.api.routes import (
    audit,
    classify,
    dead_letters,
    embeddings,
    entities,
    jobs,
    models,
    operations,
    tasks,
    training,
)
from producer.client import LeptonClient


def check_exposure(settings: LeptonSettings, host: str) -> None:
    """Refuse to serve without tokens unless bound to loopback and anonymous access was asked for."""
    if settings.api_tokens:
        return
    if not is_loopback(host):
        raise InvalidInputError(
            f"the API would listen on {host} without authentication: set LEPTON_API_TOKENS (a JSON list of"
            " bearer tokens), or bind it to 127.0.0.1"
        )
    if not settings.api_allow_anonymous:
        raise InvalidInputError(
            "no API tokens are configured: set LEPTON_API_TOKENS, or allow anonymous access on loopback"
            " with `lepton api --allow-anonymous` (LEPTON_API_ALLOW_ANONYMOUS=true)"
        )


def create_app(settings: LeptonSettings, client: LeptonClient | None = None) -> FastAPI:
    """The API over one ``LeptonClient`` (Redis, the registry), with the limits of ``settings``."""
    # /docs and /redoc with Swagger UI's and ReDoc's files served by the API itself (fastapi-offline), not from a
    # CDN that many deployment networks cannot reach: a blank page there
    app = FastAPIOffline(
        title="Lepton Runtime",
        version=__version__,
        summary="Run Transformer models as queued jobs: classify, embeddings, entities, bulk jobs, training, models.",
    )
    app.state.settings = settings
    app.state.client = client or LeptonClient(settings)
    app.state.tokens = parse_tokens(settings.api_tokens)  # digests only: the tokens themselves are not kept
    install_error_handlers(app)

    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(DocsContentSecurity)

    for resource in (classify, embeddings, entities, jobs, training, models, dead_letters, audit, operations):
        # the routers' own routes, each complete with its router's dependencies and responses, as routes of
        # the app itself (FastAPI >= 0.160 would keep an included router as one nested route)
        app.router.routes.extend(resource.router.routes)
    served = [route.path for route in app.router.routes if isinstance(route, APIRoute)]
    app.router.routes.extend(tasks.task_routes(served).routes)  # every other task's route, from its spec
    for route in app.router.routes:
        if isinstance(route, APIRoute):  # operation ids are the routes' names: what generated clients call
            route.operation_id = route.name
    return app


def create_app_from_env() -> FastAPI:
    """The app for uvicorn's ``--factory`` (``lepton api --workers N``): each worker process reads LEPTON_*."""
    return create_app(load_settings())
