"""Serving the development identity provider from this server's own process.

Every request to it must come from loopback and name a loopback host: the start checks
the configured address, but a process manager may bind elsewhere (gunicorn ``-b 0.0.0.0``,
a unix socket behind a proxy), and a page on another site can reach a loopback server
through a host name of its own that resolves to 127.0.0.1 (DNS rebinding). Anything else
is a 403 in Backstage's error shape.

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

from app.core.errors import NotAllowedError, send_error_response
from app.devidp.server import DevIdentityProvider
from app.devidp.settings import MOUNT_PATH, DevIdpSettings, is_loopback_host

log = logging.getLogger(__name__)

# Where the edge middleware keeps the direct peer, before trusted proxies name another
# client (app.handlers.peer.PEER_STATE_KEY; this layer may not import it).
_PEER_STATE_KEY = "peer"

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
                refusal = _refusal(scope)
                if refusal is not None:
                    log.warning("development identity provider: refused %s", refusal)
                    await _send_refusal(scope, send, refusal)
                    return
                # ASGI: path stays whole, root_path grows (a2wsgi makes SCRIPT_NAME of it).
                child = dict(scope, root_path=scope.get("root_path", "") + self.prefix)
                await self._wsgi(child, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> str | None:
    """Why this request may not reach the provider; None when it may."""
    client = scope.get("client")
    peer = (scope.get("state") or {}).get(_PEER_STATE_KEY) or (client[0] if client else None)
    if not isinstance(peer, str) or not is_loopback_host(peer):
        return "a request from an address other than loopback"
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    if len(hosts) != 1 or not is_loopback_host(_host_name(hosts[0].decode("latin-1"))):
        return "a request for a host other than loopback"
    return None


def _host_name(host: str) -> str:
    """The name of a Host header, without its port ('[::1]:7007' -> '::1')."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


async def _send_refusal(scope: Scope, send: Send, refusal: str) -> None:
    # Not under /api/auth: the URL is named whole.
    await send_error_response(
        scope,
        send,
        NotAllowedError(f"The development identity provider refuses {refusal}"),
        mount="",
    )


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
