"""A start that fails says why in one line.

Starlette reports a failed lifespan with the whole traceback, and uvicorn logs it: with a
database that cannot be reached, three chained tracebacks and 171 lines, the cause one
line near the end. The operator needs that line: what failed and what to do. The full
traceback stays available at DEBUG.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The server cannot start; the message says what failed and what to do."""


class OneLineStartupFailure:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_one_line(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                text = str(message.get("message", ""))
                log.debug("start-up failed:\n%s", text)
                message = {**message, "message": f"cannot start: {last_error(text)}"}
            await send(message)

        await self.app(scope, receive, send_one_line)


def last_error(traceback_text: str) -> str:
    """The final exception's message (chained causes print first, the last line last)."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    _, separator, detail = lines[-1].partition(": ")
    return detail if separator else lines[-1]
