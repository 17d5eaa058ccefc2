"""The shutdown middleware (app/server/middleware/shutdown.py) on its own: a cancelled
request that has not started its response is answered 503; one that has is cut as before
(the cancellation goes on, uvicorn closes the connection); other requests pass through."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.server.middleware.shutdown import ShutdownCut

pytestmark = pytest.mark.anyio

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/api/auth/github/refresh",
    "query_string": b"env=development",
    "headers": [],
}


async def _run(app: Any) -> tuple[list[Message], asyncio.Task[None]]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    task = asyncio.create_task(ShutdownCut(app)(dict(SCOPE), receive, send))
    await asyncio.sleep(0.01)
    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
    try:
        await task
    except asyncio.CancelledError:
        pass
    return sent, task


async def test_a_cancelled_request_without_a_response_is_answered_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def waiting(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(10)

    sent, task = await _run(waiting)
    assert not task.cancelled()
    start, body = sent
    assert start["status"] == 503
    assert dict(start["headers"])[b"retry-after"] == b"1"
    assert json.loads(body["body"]) == {
        "error": {
            "name": "ServiceUnavailableError",
            "message": "The server is shutting down; retry the request",
        },
        "request": {"method": "POST", "url": "/github/refresh?env=development"},
        "response": {"statusCode": 503},
    }
    assert [r.getMessage() for r in caplog.records] == [
        "POST /github/refresh?env=development cut at the graceful shutdown deadline: answered 503"
    ]


async def test_a_cancelled_request_whose_response_started_stays_cancelled() -> None:
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(10)

    sent, task = await _run(streaming)
    assert task.cancelled()
    assert [m["type"] for m in sent] == ["http.response.start"]
