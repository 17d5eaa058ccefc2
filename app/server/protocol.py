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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config.backend import RequestLimitSettings
from app.core.errors import RequestHeaderFieldsTooLargeError, render_error_body

# Room for the request line (URLs carry redirect URLs and states) and each field's framing.
REQUEST_LINE_ALLOWANCE = 32 * 1024
# How long a refused connection is kept open, discarding, before it is closed.
LINGER_SECONDS = 2.0


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    head_bytes: int = RequestLimitSettings().header_bytes + REQUEST_LINE_ALLOWANCE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_seen = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
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
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_seen = 0

    def _refuse(self) -> None:
        self._refused = True
        body = render_error_body(
            RequestHeaderFieldsTooLargeError(
                f"Request head too large: at most {self.head_bytes} bytes are allowed"
            ),
            method=_method(self.parser),
            url="",
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)


def _method(parser: Any) -> str:
    try:
        return str(parser.get_method().decode("ascii"))
    except Exception:  # noqa: BLE001 - not parsed yet: any method will do for the body
        return "GET"


def limited_protocol(limits: RequestLimitSettings) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http`` option, with these limits."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"head_bytes": limits.header_bytes + REQUEST_LINE_ALLOWANCE},
    )
