"""The /metrics endpoint of a worker: every pool process's metrics summed, queue depth and age, GPU figures;
with LEPTON_API_TOKENS set, a bearer token of theirs with the ``read`` scope is required (the API's rules,
lepton_runtime/tokens.py); without them, only on loopback."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lepton_runtime.errors import InvalidInputError
from lepton_runtime.exposure import is_loopback
from lepton_runtime.settings import LeptonSettings
from lepton_runtime.tokens import find_caller, parse_tokens

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the worker log."""


def use_multiprocess_dir(directory: str) -> None:
    """Choose prometheus-client's multiprocess mode: must run before anything imports prometheus_client."""
    os.makedirs(directory, exist_ok=True)
    for stale in os.listdir(directory):  # figures of an earlier worker that used the same directory
        if stale.endswith(".db"):
            os.unlink(os.path.join(directory, stale))
    os.environ[MULTIPROC_DIR_VARIABLE] = directory


def serve_metrics(settings: LeptonSettings, address: str, port: int) -> WSGIServer:
    """Serve /metrics in a daemon thread of this (the worker's main) process; returns the server."""
    from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

    from lepton_runtime.jobs import connect_with
    from lepton_runtime.monitoring.collectors import GpuCollector, QueueCollector

    tokens = parse_tokens(settings.api_tokens)
    if not is_loopback(address) and not tokens:
        raise InvalidInputError(
            f"metrics would be served on {address} without authentication: set LEPTON_API_TOKENS (scrapers"
            " send `Authorization: Bearer <token>`), or bind --metrics-address 127.0.0.1"
        )
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(QueueCollector(connect_with(settings)))
    registry.register(GpuCollector())
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if tokens:
            caller = find_caller(tokens, environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer "))
            if caller is None:
                start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer"), ("Content-Type", "text/plain")])
                return [b"a valid bearer token of LEPTON_API_TOKENS is required\n"]
            if "read" not in caller.scopes:
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"this token lacks the read scope that /metrics needs\n"]
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    server = make_server(address, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="lepton-metrics", daemon=True).start()
    return server
