"""Errors as the HTTP API answers them: one shape, the status each code's class declares, the handlers.

Every answer that is not a success is ``{"error": {"code", "message", "issues"}}`` with a code of
``lepton_runtime.errors``; FastAPI's and Starlette's own refusals (validation, unknown routes, bodies the
parser refuses) are mapped to codes of that tree too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from lepton_runtime.constants import API_RETRY_AFTER_S, QUOTA_RETRY_AFTER_S
from lepton_runtime.errors import (
    InputIssue,
    InternalError,
    InvalidInputError,
    InvalidReferenceError,
    LeptonError,
    MethodNotAllowedError,
    QueueFullError,
    QuotaExceededError,
    RouteNotFoundError,
    UnauthorizedError,
    error_classes,
)
from producer.api.schemas import ErrorBody, ErrorIssue, ErrorResponse

logger = logging.getLogger(__name__)

# What each status means to a client, for the OpenAPI document.
STATUS_MEANINGS = {
    401: "No or wrong bearer token.",
    403: "The token lacks the scope the route needs (submit, read, train, admin).",
    404: "Unknown model, job or route.",
    405: "The route does not take this method.",
    409: "The job or model cannot do that in its state.",
    413: "Too many texts or bytes.",
    415: "The body's content type is not accepted.",
    422: "A field is invalid; the error names it.",
    429: "The queue is too deep, or the tenant has its quota of waiting requests; retry after Retry-After seconds.",
    500: "A failure on the server's side (a corrupt model, a bug).",
    503: "Redis, or an execution provider, is unavailable.",
    504: "A wait ended before the job did.",
}


def error_responses(*statuses: int, beside: str | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring the error shape for these statuses. ``beside``: the media type of a route
    whose success is not JSON (its errors still are, so they are declared as JSON by reference)."""
    if beside is None:
        return {status: {"model": ErrorResponse, "description": STATUS_MEANINGS[status]} for status in statuses}
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}}}
    return {status: {"description": STATUS_MEANINGS[status], "content": content} for status in statuses}


# Fields holding model names, references and aliases, and what a valid one is (the patterns the document declares).
_NAMED = {
    "model": "a model reference: name, name@version or name@alias (a name is 1-64 lower-case letters, digits, '.', '_' "
    "or '-', starting with a letter or digit)",
    "name": "a model name: 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
    "alias": "an alias: a lower-case letter, then up to 31 lower-case letters, digits, '_' or '-'",
}


def error_response(error: LeptonError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The answer for one error of the tree, with the status its class declares (and ``headers``, such as a 405's
    ``Allow``)."""
    issues = [ErrorIssue(field=i.field, problem=i.problem) for i in getattr(error, "issues", [])]
    body = ErrorResponse(error=ErrorBody(code=error.code, message=str(error), issues=issues))
    if isinstance(error, QuotaExceededError):
        headers = {"Retry-After": str(QUOTA_RETRY_AFTER_S)}
    elif isinstance(error, QueueFullError):
        headers = {"Retry-After": str(API_RETRY_AFTER_S)}
    elif isinstance(error, UnauthorizedError):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body.model_dump(), status_code=error.http_status, headers=dict(headers or {}))


def issue_of(error: Any) -> InputIssue:
    """One validation error as the field it concerns and what is wrong with it."""
    if error.get("type") == "json_invalid":  # its location is a character position, not a field
        reason = (error.get("ctx") or {}).get("error", "not JSON")
        return InputIssue(
            "body",
            f"the body is not valid JSON ({reason} at character {error['loc'][-1]}); send a JSON object"
            ' such as {"texts": ["..."], "model": "name"}',
        )
    field = ".".join(str(part) for part in error["loc"] if part != "body") or "body"
    if error.get("type") == "string_pattern_mismatch" and error["loc"][-1] in _NAMED:
        return InputIssue(field, f"{error['input']!r} is not {_NAMED[error['loc'][-1]]}")
    if field == "body" and error.get("type") == "missing":
        return InputIssue(
            "body", 'the request has no body; send a JSON object such as {"texts": ["..."], "model": "name"}'
        )
    return InputIssue(field, str(error["msg"]))


def invalid_request(error: RequestValidationError) -> InvalidInputError:
    """422 naming each bad field; ``invalid_reference`` when what is wrong is a model name, reference or alias."""
    issues = [issue_of(e) for e in error.errors()]
    names = [e for e in error.errors() if e.get("type") == "string_pattern_mismatch" and e["loc"][-1] in _NAMED]
    kind = InvalidReferenceError if names and len(names) == len(issues) else InvalidInputError
    return kind("; ".join(f"{issue.field}: {issue.problem}" for issue in issues), issues=issues)


def from_http_exception(error: StarletteHTTPException) -> LeptonError:
    """Starlette's refusals as errors of the tree: unknown route, wrong method, a body it could not parse."""
    if error.status_code == 404:
        return RouteNotFoundError(f"{error.detail}: no such route; the routes are listed at /docs")
    if error.status_code == 405:
        return MethodNotAllowedError(f"{error.detail}: this route does not take that method; see /docs")
    if error.status_code == 400:  # FastAPI's parser gave up (nesting too deep, bytes that are not UTF-8)
        problem = f"the body could not be parsed ({error.detail}); send UTF-8 JSON of bounded depth"
        return InvalidInputError(f"body: {problem}", issues=[InputIssue("body", problem)])
    fitting = [kind for kind in error_classes() if kind.http_status == error.status_code]
    kind = fitting[0] if fitting else InternalError
    return kind(str(error.detail))


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at the request's path (Starlette's 405 names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal in the one error shape."""

    @app.exception_handler(LeptonError)
    async def lepton_error(_: Request, error: LeptonError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(invalid_request(error))

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error while answering a request")
        return error_response(InternalError(f"an unexpected error ({type(error).__name__}); the API log has it"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(from_http_exception(error), headers)


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], data: bytes | dict[str, Any]) -> Model:
    """``data`` as ``model``, or the 422 the API gives for any invalid body, naming each bad field."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as error:
        errors = error.errors(include_url=False)
        if isinstance(data, bytes) and [e["type"] for e in errors] == ["json_invalid"]:
            parsed = _standard_json(data)  # pydantic's parser refuses "\ud800", which JSON allows
            if parsed is not None:
                return validated(model, parsed)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _standard_json(data: bytes) -> dict[str, Any] | None:
    """A JSON object as the standard library reads it (the escape of a lone surrogate included: that text is then
    an item error, as FastAPI's own body parsing gives it), or None where that parser refuses it too."""
    try:
        parsed = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
