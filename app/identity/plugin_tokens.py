"""Our outbound plugin tokens, as Backstage's ``DefaultPluginTokenHandler.issueToken``
makes them: header ``{typ: vnd.backstage.plugin, alg, kid}``, claims ``{sub: "auth",
aud: <target plugin>, iat, exp, obo?}`` where ``exp`` is an hour ahead but never after
the ``obo`` user token's own expiry."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from app.config.discovery import OWN_PLUGIN_ID
from app.core.clock import Clock
from app.core.errors import AuthenticationError
from app.identity.plugin_keys import PLUGIN_KEY_DURATION_SECONDS, PluginKeySource
from app.identity.tokens import LIMITED_USER_TOKEN_TYPE, USER_TOKEN_TYPE

PLUGIN_TOKEN_TYPE = "vnd.backstage.plugin"
# The path under a plugin's base URL where its plugin-token keys are published.
PLUGIN_JWKS_PATH = "/.backstage/auth/v1/jwks.json"


@dataclass(frozen=True)
class OnBehalfOf:
    limited_user_token: str
    expires_at: float


class PluginTokenIssuer:
    def __init__(
        self,
        keys: PluginKeySource,
        clock: Clock,
        *,
        own_plugin_id: str = OWN_PLUGIN_ID,
        duration_seconds: int = PLUGIN_KEY_DURATION_SECONDS,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._own = own_plugin_id
        self._duration = duration_seconds

    async def issue(self, target_plugin_id: str, *, on_behalf_of: OnBehalfOf | None = None) -> str:
        key = await self._keys.signing_key()
        iat = math.floor(self._clock.now())
        exp = iat + self._duration
        if on_behalf_of is not None:
            exp = min(exp, math.floor(on_behalf_of.expires_at))
        claims: dict[str, Any] = {"sub": self._own, "aud": target_plugin_id, "iat": iat, "exp": exp}
        if on_behalf_of is not None:
            claims["obo"] = on_behalf_of.limited_user_token
        header = {"typ": PLUGIN_TOKEN_TYPE, "alg": key.algorithm, "kid": key.kid}
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return jws.serialize_compact(header, payload, key.private_key, algorithms=[key.algorithm])

    async def public_keys(self) -> list[dict[str, Any]]:
        """The JWKS of ``/.backstage/auth/v1/jwks.json``."""
        return await self._keys.public_keys()


def _segment(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def limited_user_token(user_token: str) -> OnBehalfOf:
    """The limited form of one of our user tokens (``UserTokenHandler.createLimitedUserToken``):
    header ``{typ: vnd.backstage.limited-user, alg, kid}``, claims ``{sub, iat, exp}``, and
    the user token's ``uip`` as the signature. A limited token is returned as it is.

    Raises:
        AuthenticationError: with Backstage's messages.
    """
    try:
        compact = extract_compact(user_token.encode())
        header = compact.protected
        payload = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise AuthenticationError("Failed to create limited user token, invalid token") from exc
    typ = header.get("typ")
    if not typ or typ == LIMITED_USER_TOKEN_TYPE:
        return OnBehalfOf(user_token, float(payload["exp"]))
    if typ != USER_TOKEN_TYPE:
        raise AuthenticationError("Failed to create limited user token, invalid token type")
    if not payload.get("uip"):
        raise AuthenticationError(
            "Failed to create limited user token, missing user identity proof"
        )
    limited_header = {
        "typ": LIMITED_USER_TOKEN_TYPE,
        "alg": header.get("alg"),
        "kid": header.get("kid"),
    }
    claims = {"sub": payload.get("sub"), "iat": payload.get("iat"), "exp": payload.get("exp")}
    token = f"{_segment(limited_header)}.{_segment(claims)}.{payload['uip']}"
    return OnBehalfOf(token, float(payload["exp"]))
