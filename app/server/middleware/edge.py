"""What happens at the edge, before any handler: who the client is, and how often it may call.

* ``X-Forwarded-For``/``-Proto`` are honoured only from ``backend.trustedProxies``
  (uvicorn's ProxyHeadersMiddleware); anyone else's forwarded headers are ignored, since
  header trust from anyone is how auth bypasses happen. The direct peer is kept in
  ``scope["state"]["peer"]`` for checks that must see it (header-trusting proxy providers).
* Rate limits per client address on ``/start``, ``/refresh`` and the callback
  (``/handler/frame``, GET and POST, and its ``/frame/handler`` alias), one budget for all
  (Backstage's ``backend.rateLimit`` keys: ``window``, ``incomingRequestLimit``,
  ``ipAllowList``), answered with 429, ``Retry-After`` and Backstage's error body. The
  callback counts because each one makes this server send a client-authenticated token
  request to the identity provider.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Sequence
from typing import cast

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.config.backend import RateLimitSettings
from app.core.errors import TooManyRequestsError, send_error_response
from app.handlers.peer import PEER_STATE_KEY

_LIMITED_ROUTE = re.compile(r"^/api/auth/[^/]+/(start|refresh|handler/frame|frame/handler)$")


class ClientAddress:
    """Records the direct peer, then lets trusted proxies name the real client."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str]) -> None:
        self.app: ASGIApp = app
        if trusted_proxies:
            # uvicorn types ASGI apps more narrowly than Starlette; both are the ASGI callable.
            proxied = ProxyHeadersMiddleware(app, trusted_hosts=list(trusted_proxies))  # type: ignore[arg-type]
            self.app = cast(ASGIApp, proxied)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            scope.setdefault("state", {})[PEER_STATE_KEY] = scope["client"][0]
        await self.app(scope, receive, send)


class RateLimit:
    """Moving-window limits per client address (``limits``; memory storage per process)."""

    def __init__(self, app: ASGIApp, *, settings: RateLimitSettings) -> None:
        self.app = app
        self._settings = settings
        self._item = RateLimitItemPerSecond(
            settings.limit, max(1, math.ceil(settings.window_seconds))
        )
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._allowed = [ipaddress.ip_network(a, strict=False) for a in settings.allow_list]

    def _exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _LIMITED_ROUTE.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        host = scope["client"][0] if scope.get("client") else "unknown"
        if self._exempt(host) or await self._limiter.hit(self._item, host):
            await self.app(scope, receive, send)
            return
        stats = await self._limiter.get_window_stats(self._item, host)
        # limits keeps wall-clock time, so Retry-After is computed on the same clock.
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        await send_error_response(
            scope,
            send,
            TooManyRequestsError("Too many requests, please try again later"),
            headers=[(b"retry-after", str(retry_after).encode())],
        )
