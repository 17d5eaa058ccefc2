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

from app.core.errors import ServiceUnavailableError, scope_url, send_error_response

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
    log.warning(
        "%s %s cut at the graceful shutdown deadline: answered 503",
        scope["method"],
        scope_url(scope),
    )
    await send_error_response(
        scope,
        send,
        ServiceUnavailableError("The server is shutting down; retry the request"),
        headers=[(b"retry-after", str(RETRY_AFTER_SECONDS).encode()), (b"connection", b"close")],
    )
