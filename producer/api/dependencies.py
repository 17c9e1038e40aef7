"""What routes get through FastAPI's dependencies: the settings and client of the app, the bearer-token check,
and the queue-depth check that refuses submissions with 429 while a queue is too deep."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.params import Depends as DependsMarker
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lepton_runtime.constants import API_RETRY_AFTER_S, INFERENCE_QUEUE, TRAINING_QUEUE
from lepton_runtime.errors import QueueFullError, UnauthorizedError
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.queues import queue_depths
from lepton_runtime.settings import LeptonSettings
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


def authorised(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
    """Let the request through with a token of LEPTON_API_TOKENS (or none configured, on loopback)."""
    tokens: list[bytes] = request.app.state.tokens
    if not tokens:
        return  # check_exposure allowed this: loopback, anonymous access asked for
    given = credentials.credentials.encode() if credentials else b""
    if not any(hmac.compare_digest(given, token) for token in tokens):
        raise UnauthorizedError("a valid bearer token is required: send `Authorization: Bearer <token>`")


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


# The dependencies of routes that need a token, and of those that also put work on a queue.
SECURED: list[DependsMarker] = [Depends(authorised)]
INFERENCE_OPEN: list[DependsMarker] = [*SECURED, Depends(queue_not_too_deep(INFERENCE_QUEUE))]
TRAINING_OPEN: list[DependsMarker] = [*SECURED, Depends(queue_not_too_deep(TRAINING_QUEUE))]
