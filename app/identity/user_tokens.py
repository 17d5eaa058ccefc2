"""Verifying our own user tokens (full and limited) as other Backstage backends do
(``UserTokenHandler.verifyToken``): against our published keys, ``typ`` one of the two
user token types, ``iat``, ``exp`` and ``sub`` required."""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from app.core.clock import Clock
from app.core.errors import AuthenticationError
from app.identity.tokens import AUDIENCE, LIMITED_USER_TOKEN_TYPE, USER_TOKEN_TYPE, TokenIssuer


async def verify_user_token(issuer: TokenIssuer, clock: Clock, token: str) -> dict[str, Any]:
    """The claims of a valid user token; a full one must be ours (``iss`` the issuer's,
    ``aud`` Backstage's).

    Raises:
        AuthenticationError: on any failure.
    """
    published = await issuer.list_public_keys()
    try:
        keys = KeySet.import_key_set({"keys": published})
        decoded = jwt.decode(token, keys, algorithms=[issuer.algorithm])
    except (JoseError, ValueError) as exc:
        raise AuthenticationError(f"Failed user token verification, {exc}") from exc
    typ = decoded.header.get("typ")
    if typ not in (USER_TOKEN_TYPE, LIMITED_USER_TOKEN_TYPE):
        raise AuthenticationError("Failed user token verification, unexpected token type")
    # A full user token must be this deployment's, for Backstage's audience: with a static
    # key shared between deployments, the signature alone does not say whose it is.
    # Limited tokens carry only sub, iat and exp (Backstage's format): nothing to check.
    issued_here: dict[str, Any] = (
        {
            "iss": {"essential": True, "value": issuer.issuer},
            "aud": {"essential": True, "value": AUDIENCE},
        }
        if typ == USER_TOKEN_TYPE
        else {}
    )
    registry = jwt.JWTClaimsRegistry(
        now=int(clock.now()),
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        **issued_here,
    )
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        raise AuthenticationError(f"Failed user token verification, {exc}") from exc
    return dict(decoded.claims)
