"""Serving the development identity provider from this server's own process.

The Flask app runs behind a2wsgi's WSGI-to-ASGI adapter (on its thread pool), so a
request this server makes to it over HTTP (the ``oidc`` provider's discovery, code
exchange, userinfo) is answered while the event loop awaits that request: no deadlock.
Discovery is lazy (on the first ``/start``), so nothing is fetched at startup.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from a2wsgi import WSGIMiddleware
from connexion import AsyncApp
from connexion.middleware import MiddlewarePosition
from starlette.types import ASGIApp, Receive, Scope, Send

from app.devidp.server import DevIdentityProvider
from app.devidp.settings import MOUNT_PATH, DevIdpSettings

log = logging.getLogger(__name__)

# Sign-ins are interactive and few: a small pool is plenty.
WSGI_THREADS = 4


class DevIdpMount:
    """ASGI middleware: requests under ``prefix`` go to the WSGI app, others pass on."""

    def __init__(self, app: ASGIApp, *, provider: DevIdentityProvider, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        # a2wsgi's and Flask's typings of WSGI and ASGI callables differ in detail only.
        wsgi_app: Any = provider.wsgi_app
        self._wsgi = cast(ASGIApp, WSGIMiddleware(wsgi_app, workers=WSGI_THREADS))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                # ASGI: path stays whole, root_path grows (a2wsgi makes SCRIPT_NAME of it).
                child = dict(scope, root_path=scope.get("root_path", "") + self.prefix)
                await self._wsgi(child, receive, send)
                return
        await self.app(scope, receive, send)


def mount_dev_idp(app: AsyncApp, *, settings: DevIdpSettings) -> DevIdentityProvider:
    """Serve the development identity provider at ``<issuer path>`` (``/dev-idp``).

    Added as middleware in front of connexion's exception handling and routing (inside
    request ids, metrics, CORS and rate limiting), so it must be called before the app
    serves its first request. Callers have checked that it may run (``dev_idp_settings``).
    """
    provider = DevIdentityProvider(settings)
    app.add_middleware(
        DevIdpMount,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        provider=provider,
        prefix=MOUNT_PATH,
    )
    clients = ", ".join(c.client_id for c in settings.clients) or "none"
    log.warning(
        "development identity provider ENABLED at %s (anyone signs in without a password; "
        "users: %s; clients: %s). Development only: never expose it.",
        settings.issuer,
        ", ".join(u.username for u in settings.users),
        clients,
    )
    if not settings.clients:
        log.warning(
            "no auth provider uses the development identity provider: set a provider's "
            "metadataUrl to %s",
            settings.discovery_url,
        )
    return provider
