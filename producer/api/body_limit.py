"""The request body limit of the HTTP API, as ASGI middleware: a declared length over the limit is answered 413
before a byte of the body is read, and a body sent without one (chunked) is cut off with 413 as soon as it passes
the limit, so no request makes the API spool more than ``max_bytes``."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lepton_runtime.errors import TooLargeError
from producer.api.errors import error_response

# After a refusal, this much more of the body is read and dropped: a client a little over the limit, still sending,
# reads its 413 instead of a reset connection (closing a socket with unread data resets it); a huge body is not read.
DRAIN_AFTER_REFUSAL_BYTES = 4 * 1024 * 1024


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (LEPTON_API_MAX_BODY_BYTES) with 413 ``too_large``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(f"the request body is {int(declared):,} bytes", scope, receive, send)
            await _drain(receive)
            return
        received = 0
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    await self._refuse(f"the request body passed {self.max_bytes:,} bytes", scope, receive, send)
                    return {"type": "http.disconnect"}  # the app stops reading; its own answer is dropped below
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted_receive, send_unless_refused)
        except Exception:
            if not refused:
                raise  # else the app failed on the body it was denied (a client disconnect): answered already
        if refused:
            await _drain(receive)

    async def _refuse(self, what: str, scope: Scope, receive: Receive, send: Send) -> None:
        error = TooLargeError(
            f"{what}, over the limit of {self.max_bytes:,} (LEPTON_API_MAX_BODY_BYTES); split the file, or submit "
            "it from where it is with `lepton submit`"
        )
        await error_response(error)(scope, receive, send)


async def _drain(receive: Receive) -> None:
    """Read and drop up to ``DRAIN_AFTER_REFUSAL_BYTES`` more of a refused body."""
    drained = 0
    while drained <= DRAIN_AFTER_REFUSAL_BYTES:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))
