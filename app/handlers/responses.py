"""Response helpers: Starlette responses, because several Set-Cookie headers must fit."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.responses import Response

from app.oauth.origins import ascii_url

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# Responses that carry tokens: never cached, never leaking URLs through Referer.
TOKEN_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def respond(
    body: bytes = b"",
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    cookies: Iterable[str] = (),
) -> Response:
    response = Response(content=body, status_code=status, headers=headers)
    response.raw_headers.extend((b"set-cookie", line.encode("latin-1")) for line in cookies)
    return response


def json_response(
    payload: Any,
    *,
    status: int = 200,
    cookies: Iterable[str] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    return respond(
        json.dumps(payload, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
        cookies=cookies,
    )


def redirect(location: str, *, cookies: Iterable[str] = ()) -> Response:
    # Redirect URLs come from the app (the redirect flow's redirectUrl) and may hold
    # non-ASCII characters, which a header cannot carry.
    return respond(status=302, headers={"Location": ascii_url(location)}, cookies=cookies)
