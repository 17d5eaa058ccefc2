"""The popup page that hands the sign-in result to the app window.

It posts ``{type: 'config_info', targetOrigin}`` to ``*`` (so the opener can report a
wrong app origin) and then the real message to the exact app origin only, then closes
itself. Values are embedded as ``decodeURIComponent('<encodeURIComponent(json)>')``
with ``'`` escaped too, so no payload can break out of the string literal. The CSP
allows exactly this script by hash. (``plugins/auth-node/src/flow/sendWebMessageResponse.ts``)
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# encodeURIComponent's safe set, minus "'" (the "safelyEncodeURIComponent" escaping).
_SAFE = "!()*-._~"


def _embed(value: str) -> str:
    return quote(value, safe=_SAFE)


@dataclass(frozen=True)
class WebMessagePage:
    body: bytes
    headers: dict[str, str]


def render_web_message(message: dict[str, Any], app_origin: str) -> WebMessagePage:
    data = _embed(json.dumps(message, separators=(",", ":")))
    origin = _embed(app_origin)
    script = (
        f"var authResponse = decodeURIComponent('{data}');"
        f"var origin = decodeURIComponent('{origin}');"
        "var originInfo = {'type': 'config_info', 'targetOrigin': origin};"
        "(window.opener || window.parent).postMessage(originInfo, '*');"
        "(window.opener || window.parent).postMessage(JSON.parse(authResponse), origin);"
        "setTimeout(function() { window.close(); }, 100);"
    )
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    body = f"<html><body><script>{script}</script></body></html>".encode()
    return WebMessagePage(
        body=body,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "X-Frame-Options": "sameorigin",
            "Content-Security-Policy": f"script-src 'sha256-{digest}'",
            # The page carries tokens: never cache it, never leak its URL (code, state).
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
