"""uvicorn's httptools protocol, with a cap on the request head it reads.

httptools hands a header to uvicorn only when it is complete, growing it by concatenation
as the bytes arrive (so does uvicorn with the URL): a 64 MiB header costs seconds of CPU
before the app could refuse it, and stalls every other request of the process meanwhile.
llhttp has no limit of its own, and uvicorn's ``h11_max_incomplete_event_size`` applies to
h11 only. This protocol counts the bytes of each request head as they arrive and, past
``head_bytes`` (``backend.requestLimits.headerBytes`` and room for the request line),
answers 431 in Backstage's error shape and stops parsing: it discards what the client still
sends and closes the connection soon after, so the client reads the answer rather than a
reset. The exact checks (fields, bytes) are the app's (``middleware.limits``).

It also bounds what a connection holds. A request head must arrive within
``head_timeout`` seconds of the connection (or of its first byte, for the next request on
a kept-alive connection): a client that opens connections and never finishes a request
(idle, or a partial head) would otherwise hold a descriptor each forever (uvicorn closes
only idle kept-alive connections); a partial head is answered 408, a silent connection
just closed. And a process keeps at most ``max_connections`` open (below its descriptor
limit, ``app.server.descriptors``): past it, a new connection is answered 503 and closed
at once, with a log line (at most one per ``REFUSAL_LOG_INTERVAL``), instead of failing
unseen in ``accept()`` once the descriptors are gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config.backend import RequestLimitSettings
from app.core.errors import (
    BackstageError,
    RequestHeaderFieldsTooLargeError,
    RequestTimeoutError,
    ServiceUnavailableError,
    render_error_body,
)

log = logging.getLogger(__name__)

# Room for the request line (URLs carry redirect URLs and states) and each field's framing.
REQUEST_LINE_ALLOWANCE = 32 * 1024
# How long a refused connection is kept open, discarding, before it is closed.
LINGER_SECONDS = 2.0
# Seconds a client has to send a whole request head (nginx: 60; behind a proxy, heads
# arrive at once).
DEFAULT_HEAD_TIMEOUT = 10.0
REFUSAL_LOG_INTERVAL = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    # None: no limit (only tests build a protocol without one).
    max_connections: int | None = None


class _Refusals:
    """Connections refused for the limit since the last log line (one per process)."""

    count = 0
    logged_at = float("-inf")

    @classmethod
    def record(cls, open_connections: int, limit: int) -> None:
        cls.count += 1
        now = time.monotonic()
        if now - cls.logged_at >= REFUSAL_LOG_INTERVAL:
            log.warning(
                "refused %d connection(s): %d open, the limit is %d (below the open file "
                "limit); idle and unfinished ones close after the head timeout",
                cls.count,
                open_connections,
                limit,
            )
            cls.count = 0
            cls.logged_at = now


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    head_bytes: int = RequestLimitSettings().header_bytes + REQUEST_LINE_ALLOWANCE
    connection_limits: ConnectionLimits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_seen = 0
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.connection_limits.max_connections
        if limit is not None and len(self.connections) > limit:
            _Refusals.record(len(self.connections) - 1, limit)
            self._answer_and_close(
                ServiceUnavailableError("Too many open connections, retry shortly"),
                b"503 Service Unavailable",
                extra=b"retry-after: 1\r\n",
                # At once: refused connections must not eat the descriptors kept in reserve.
                linger=False,
            )
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_started = True
            if self._head_timer is None:
                self._arm_head_timer()
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # Still in a head after this chunk: all of it was head (the parser holds at most
        # one chunk beyond the cap).
        self._head_seen += len(data)
        if self._head_seen > self.head_bytes:
            self._refuse()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_started = False
        self._head_seen = 0

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = asyncio.get_running_loop().call_later(
            self.connection_limits.head_timeout, self._head_timed_out
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if not self._head_started:
            self.transport.close()
            return
        self._answer_and_close(
            RequestTimeoutError(
                f"Request head not received within {self.connection_limits.head_timeout:g} seconds"
            ),
            b"408 Request Timeout",
        )

    def _refuse(self) -> None:
        self._answer_and_close(
            RequestHeaderFieldsTooLargeError(
                f"Request head too large: at most {self.head_bytes} bytes are allowed"
            ),
            b"431 Request Header Fields Too Large",
        )

    def _answer_and_close(
        self, error: BackstageError, status: bytes, extra: bytes = b"", *, linger: bool = True
    ) -> None:
        """Answer ``error`` and stop parsing: what the client still sends is discarded,
        and the connection closes soon after, so the client reads the answer rather than
        a reset."""
        self._refused = True
        self._cancel_head_timer()
        body = render_error_body(error, method=_method(self.parser), url="")
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: application/json; charset=utf-8\r\n%s"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, extra, len(body), body)
        )
        if not linger:
            self.transport.close()  # after what was written is sent
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)


def _method(parser: Any) -> str:
    try:
        return str(parser.get_method().decode("ascii"))
    except Exception:  # noqa: BLE001 - not parsed yet: any method will do for the body
        return "GET"


def limited_protocol(
    limits: RequestLimitSettings, connections: ConnectionLimits = ConnectionLimits()
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http`` option, with these limits."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "head_bytes": limits.header_bytes + REQUEST_LINE_ALLOWANCE,
            "connection_limits": connections,
        },
    )
