"""Backstage's refresh cookies across a switch to our server.

Backstage's refresh cookie is the identity provider's refresh token itself; ours is sealed
(app.oauth.sessions). Until ``auth.session.acceptLegacyRefreshCookiesUntil``, a cookie
that is not a sealed value is taken as Backstage's, once: the refresh that accepts it
answers with a sealed cookie, and the raw value is remembered (with the ended sessions)
so that a copy of it is refused afterwards. After that date, or without it, the user signs
in once. docs/migrating-from-backstage.md says why.
"""

from __future__ import annotations

import hashlib
import secrets

from app.core.errors import AuthenticationError
from app.handlers.context import OAuthEnvironment, OAuthProviderRuntime
from app.oauth.sessions import RefreshSession

SESSION_ID_BYTES = 16
# A sealed cookie is a compact JWE: five dot-separated parts.
_JWE_PARTS = 5


def _record(value: str) -> str:
    return "legacy-refresh-cookie:" + hashlib.sha256(value.encode()).hexdigest()


async def adopt_legacy_cookie(
    runtime: OAuthProviderRuntime, environment: OAuthEnvironment, value: str, scope: str
) -> RefreshSession | None:
    """A session for a Backstage refresh cookie accepted now, else None (not one, or the
    window is closed).

    Raises:
        AuthenticationError: the cookie was accepted before.
    """
    services = runtime.services
    until = services.settings.legacy_refresh_cookies_until
    now = services.clock.now()
    if until is None or now >= until or len(value.split(".")) == _JWE_PARTS:
        return None
    if not await services.ended_sessions.add(_record(value), until=until):
        raise AuthenticationError("Legacy session cookie already used")
    services.audit.event("legacy_refresh_cookie_adopted", provider=runtime.provider_id)
    return RefreshSession(
        refresh_token=value,
        provider_id=runtime.provider_id,
        env=environment.name,
        scope=scope,
        issued_at=int(now),
        session_id=secrets.token_urlsafe(SESSION_ID_BYTES),
    )
