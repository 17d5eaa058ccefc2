"""Request size caps, before anything else reads the request (``backend.requestLimits``).

* Header fields: at most ``header_fields`` of them, with at most ``header_bytes`` of names
  and values together; else 431. (The server's protocol, ``app.server.protocol``, stops
  reading a request head long before it could grow large; this is the exact check, for
  every server that runs the app.)
* The callback's body (``/handler/frame`` and ``/frame/handler``, a ``form_post`` of a
  code and a state): at most ``callback_body_bytes``; else 413. It is read here, up to the
  cap, before the handler parses it.

Both answer in Backstage's error shape.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.backend import RequestLimitSettings
from app.core.errors import (
    BackstageError,
    PayloadTooLargeError,
    RequestHeaderFieldsTooLargeError,
    send_error_response,
)

_CALLBACK_ROUTE = re.compile(r"^/api/auth/[^/]+/(handler/frame|frame/handler)$")


async def send_error(scope: Scope, send: Send, error: BackstageError) -> None:
    """``error`` as the whole response, with ``Connection: close`` (what is left of the
    request is not read)."""
    await send_error_response(scope, send, error, headers=[(b"connection", b"close")])


def header_error(
    headers: list[tuple[bytes, bytes]], limits: RequestLimitSettings
) -> BackstageError | None:
    if len(headers) > limits.header_fields:
        return RequestHeaderFieldsTooLargeError(
            f"Too many header fields: at most {limits.header_fields} are allowed"
        )
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
    if size > limits.header_bytes:
        return RequestHeaderFieldsTooLargeError(
            f"Header fields too large: at most {limits.header_bytes} bytes are allowed"
        )
    return None


class RequestLimits:
    def __init__(self, app: ASGIApp, *, limits: RequestLimitSettings) -> None:
        self.app = app
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = header_error(scope["headers"], self._limits)
        if error is not None:
            await send_error(scope, send, error)
            return
        if scope["method"] == "POST" and _CALLBACK_ROUTE.match(scope["path"]):
            body = await self._read_capped(scope, receive)
            if body is None:
                too_large = PayloadTooLargeError(
                    f"Request body too large: at most {self._limits.callback_body_bytes} "
                    "bytes are allowed"
                )
                await send_error(scope, send, too_large)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_capped(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it is (or says it is) over the cap."""
        cap = self._limits.callback_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > cap):
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left: the app sees the disconnect as it would have.
                return b"".join(chunks)
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, as one message; then the original channel (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
