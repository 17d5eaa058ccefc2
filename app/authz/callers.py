"""Service callers: ``backend.auth.externalAccess`` tokens as Backstage's backend accepts
them (``static``: the token itself; ``legacy``: an HS256 JWT with ``sub:
backstage-server`` and no ``aud``, signed with the shared secret)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from app.config.authorization import ExternalAccess
from app.core.clock import Clock


class ServiceCallers:
    def __init__(self, entries: Iterable[ExternalAccess], clock: Clock) -> None:
        self._entries = tuple(entries)
        self._clock = clock

    def subject(self, token: str) -> str | None:
        """The configured subject of a valid service token, else None."""
        for entry in self._entries:
            if entry.type == "static" and entry.token is not None:
                if hmac.compare_digest(entry.token.encode(), token.encode()):
                    return entry.subject
            elif entry.type == "legacy" and entry.key is not None:
                if self._legacy(token, entry.key):
                    return entry.subject
        return None

    def _legacy(self, token: str, key: bytes) -> bool:
        try:
            decoded = jwt.decode(token, OctKey.import_key(key), algorithms=["HS256"])
            claims = decoded.claims
            if claims.get("sub") != "backstage-server" or claims.get("aud"):
                return False
            jwt.JWTClaimsRegistry(now=int(self._clock.now())).validate(claims)
        except (JoseError, ValueError):
            return False
        return True
