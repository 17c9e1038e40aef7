"""The docs pages' Content-Security-Policy, as ASGI middleware: /docs and /redoc load nothing from beyond the API.

Their scripts and styles are the API's own (fastapi-offline serves Swagger UI's and ReDoc's files); ReDoc's bundle
still names an image on its maker's CDN, which a network without the outside would leave hanging and which no
operator asked for. The policy lets the pages' own and inline code run and blocks every other origin.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = frozenset({"/docs", "/redoc"})
# Swagger UI and ReDoc start from inline scripts and styles; ReDoc runs its search in a worker made from a blob.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


class DocsContentSecurity:
    """Add the docs pages' Content-Security-Policy to the answers of DOCS_PATHS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in DOCS_PATHS:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"content-security-policy", DOCS_CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_policy)
