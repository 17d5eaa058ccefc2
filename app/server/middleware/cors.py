"""CORS from Backstage's ``backend.cors`` (the stock frontend calls /refresh and /logout
cross-origin with credentials).

Starlette's middleware does the protocol; we change three things: origins are matched
with our parsed-origin patterns (Backstage's glob syntax, a ``*`` never spans a dot), a
successful preflight is ``204`` as in Backstage (the ``cors`` package), and a preflight
from an origin that is not allowed gets no CORS headers at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config.backend import CorsSettings
from app.oauth.origins import OriginPattern, parse_origin


class BackstageCORSMiddleware(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, settings: CorsSettings) -> None:
        super().__init__(
            app,
            allow_origins=(),
            allow_methods=[m.upper() for m in settings.methods] + ["OPTIONS"],
            allow_headers=settings.allowed_headers or ("*",),
            allow_credentials=settings.credentials,
            expose_headers=settings.exposed_headers,
            max_age=settings.max_age_seconds or 0,
        )
        if settings.max_age_seconds is None:
            self.preflight_headers.pop("Access-Control-Max-Age", None)
        self._patterns: Sequence[OriginPattern] = [
            OriginPattern.compile(o) for o in settings.origins
        ]

    def is_allowed_origin(self, origin: str) -> bool:
        parsed = parse_origin(origin)
        # The browser's Origin header is already an origin: anything more is refused.
        if parsed is None or str(parsed) != origin.lower().rstrip("/"):
            return False
        return any(p.matches(parsed) for p in self._patterns)

    async def simple_response(
        self, scope: Scope, receive: Receive, send: Send, request_headers: Headers
    ) -> None:
        origin = request_headers.get("origin")
        if origin is None or not self.is_allowed_origin(origin):
            # Not even Access-Control-Allow-Credentials for an origin we do not allow.
            await self.app(scope, receive, send)
            return
        await super().simple_response(scope, receive, send, request_headers)

    def preflight_response(self, request_headers: Headers) -> Response:
        if not self.is_allowed_origin(request_headers["origin"]):
            return Response(status_code=403)
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            return response
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-type")
        }
        return Response(status_code=204, headers=headers)
