"""What routes get through FastAPI's dependencies: the settings and client of the app, the bearer token (its
tenant and scopes: 401 without one, 403 without the scope), and the queue-depth check that refuses
submissions with 429 while a queue is too deep."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.params import Depends as DependsMarker
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lepton_runtime.constants import API_RETRY_AFTER_S, INFERENCE_QUEUE, TRAINING_QUEUE
from lepton_runtime.errors import ForbiddenError, QueueFullError, TooLargeError, UnauthorizedError
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.queues import queue_depths
from lepton_runtime.settings import LeptonSettings
from lepton_runtime.tokens import ALL_SCOPES, ApiToken, Caller, find_caller
from producer.client import LeptonClient

# Bearer-token scheme (declared in the OpenAPI document); checked against LEPTON_API_TOKENS.
BEARER = HTTPBearer(auto_error=False)


def settings_of(request: Request) -> LeptonSettings:
    settings: LeptonSettings = request.app.state.settings
    return settings


def client_of(request: Request) -> LeptonClient:
    client: LeptonClient = request.app.state.client
    return client


Settings = Annotated[LeptonSettings, Depends(settings_of)]
Client = Annotated[LeptonClient, Depends(client_of)]


def authorised(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Caller:
    """The caller of a token of LEPTON_API_TOKENS (or, none configured, on loopback: LEPTON_TENANT, every scope)."""
    tokens: list[ApiToken] = request.app.state.tokens
    if not tokens:  # check_exposure allowed this: loopback, anonymous access asked for
        caller = Caller(request.app.state.settings.tenant, ALL_SCOPES)
    else:
        found = find_caller(tokens, credentials.credentials) if credentials else None
        if found is None:
            raise UnauthorizedError("a valid bearer token is required: send `Authorization: Bearer <token>`")
        caller = found
    request.state.caller = caller
    return caller


def require(scope: str) -> Callable[[Caller], Caller]:
    """A dependency letting through callers whose token holds ``scope`` (403 naming it otherwise)."""

    def check(caller: Annotated[Caller, Depends(authorised)]) -> Caller:
        if scope not in caller.scopes:
            held = ", ".join(sorted(caller.scopes)) or "none"
            raise ForbiddenError(
                f"this token may not do this: it lacks the {scope!r} scope (it holds: {held}); "
                f"use a token with {scope!r} (LEPTON_API_TOKENS entries are TENANT:SCOPES:TOKEN)"
            )
        return caller

    return check


def caller_of(request: Request) -> Caller:
    caller: Caller = request.state.caller
    return caller


# The caller of a route that declared one of the scope dependencies below.
CurrentCaller = Annotated[Caller, Depends(caller_of)]


def queue_not_too_deep(queue: str) -> Callable[[Settings, Client], None]:
    """A dependency refusing with 429 while ``queue`` holds more than LEPTON_API_MAX_QUEUE_DEPTH messages."""

    def check(settings: Settings, client: Client) -> None:
        with broker_errors(settings.broker_url):
            depth = queue_depths(client.redis, (queue,))[queue]
        if depth > settings.api_max_queue_depth:
            raise QueueFullError(
                f"{queue} holds {depth:,} waiting messages (limit {settings.api_max_queue_depth:,});"
                f" retry after {API_RETRY_AFTER_S} s or add workers"
            )

    return check


_BULK_LANE_NOT_TOO_DEEP = queue_not_too_deep(INFERENCE_QUEUE)


def few_texts_fit(
    texts: Sequence[object], settings: LeptonSettings, client: LeptonClient, field: str = "texts"
) -> None:
    """The guards of every few-text route: at most LEPTON_MAX_ITEMS texts (413, pointing to bulk jobs), and more than
    the interactive lane takes only while the bulk lane's queue is not too deep (429)."""
    if len(texts) > settings.max_items:
        raise TooLargeError(
            f"{field}: {len(texts)} items is over the limit of {settings.max_items} per request;"
            " submit a bulk job (POST /v1/jobs) for more"
        )
    if len(texts) > settings.interactive_max_texts:
        _BULK_LANE_NOT_TOO_DEEP(settings, client)


# The dependencies of routes: the scope each needs, and, for those that put work on a queue, its depth.
READ: list[DependsMarker] = [Depends(require("read"))]
SUBMIT: list[DependsMarker] = [Depends(require("submit"))]
SUBMIT_BULK: list[DependsMarker] = [*SUBMIT, Depends(queue_not_too_deep(INFERENCE_QUEUE))]
TRAIN: list[DependsMarker] = [Depends(require("train")), Depends(queue_not_too_deep(TRAINING_QUEUE))]
ADMIN: list[DependsMarker] = [Depends(require("admin"))]
