"""Requests cut by the graceful shutdown's deadline are answered 503, not a plain 500.

On SIGTERM uvicorn waits ``--graceful-timeout`` seconds for the requests in flight, then
cancels their tasks; a cancelled request escaped the app and uvicorn answered a plain-text
"Internal Server Error" and logged an ERROR traceback for each. The only cancellation a
request task sees is that one (uvicorn does not cancel a request when its client goes
away), so this middleware answers a cancelled request that has not started its response
with a 503 in Backstage's error body and ``Retry-After`` (another instance, or this one
restarted, will serve the retry), logs one line for it, and lets the task end normally.
A request whose response had started is cut as before: its connection is closed.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ServiceUnavailableError, render_error_body

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1


class ShutdownCut:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if started or task is None:
                raise
            # The task goes on (to answer), no longer cancelled.
            task.uncancel()
            await _answer_cut(scope, send)


async def _answer_cut(scope: Scope, send: Send) -> None:
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"].removeprefix("/api/auth")
    url = f"{path}?{query}" if query else path
    log.warning("%s %s cut at the graceful shutdown deadline: answered 503", scope["method"], url)
    body = render_error_body(
        ServiceUnavailableError("The server is shutting down; retry the request"),
        method=scope["method"],
        url=url,
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
