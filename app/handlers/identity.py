"""Identity endpoints under ``/api/auth``: JWKS, discovery and userinfo.

(``plugins/auth-backend/src/service/OidcRouter.ts``, ``OidcService.ts``)
"""

from __future__ import annotations

import re
from typing import Any

from connexion import request
from starlette.responses import Response

from app.core.errors import AuthenticationError, InputError
from app.handlers.context import Services
from app.handlers.responses import json_response, respond
from app.identity.user_tokens import verify_user_token as verify_own_user_token

_BEARER = re.compile(r"^Bearer[ ]+(\S+)$", re.I)


async def jwks(services: Services) -> Response:
    return json_response({"keys": await services.token_issuer.list_public_keys()})


async def plugin_jwks(services: Services) -> Response:
    keys = await services.plugin_tokens.public_keys() if services.plugin_tokens else []
    return json_response({"keys": keys})


async def openid_configuration(services: Services) -> Response:
    base = services.settings.auth_base_url
    config = services.settings.authorization
    offline = config.refresh_tokens.enabled
    clients = config.static_clients
    auth_methods = []
    if any(c.client_secret for c in clients):
        auth_methods += ["client_secret_basic", "client_secret_post"]
    if any(not c.client_secret for c in clients):
        auth_methods.append("none")
    # Backstage's key order and values (section 8.4); authorization_endpoint is
    # advertised even though browser sign-in goes through the provider routes.
    doc: dict[str, Any] = {
        "issuer": base,
        "token_endpoint": f"{base}/v1/token",
        "userinfo_endpoint": f"{base}/v1/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "response_types_supported": ["code", "id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [
            "RS256",
            "RS384",
            "RS512",
            "ES256",
            "ES384",
            "ES512",
            "PS256",
            "PS384",
            "PS512",
            "EdDSA",
        ],
        "scopes_supported": ["openid", *(["offline_access"] if offline else [])],
        "token_endpoint_auth_methods_supported": auth_methods,
        "claims_supported": ["sub", "ent"],
        "grant_types_supported": ["authorization_code", *(["refresh_token"] if offline else [])],
        "authorization_endpoint": f"{base}/v1/authorize",
        "code_challenge_methods_supported": ["S256"],
    }
    if clients:
        doc["revocation_endpoint"] = f"{base}/v1/revoke"
    return json_response(doc)


async def userinfo(services: Services) -> Response:
    match = _BEARER.match(request.headers.get("authorization", ""))
    if not match:
        raise AuthenticationError("No token provided")
    token = match.group(1)
    sub: Any
    plugin = await services.plugin_callers.verify(token) if services.plugin_callers else None
    if plugin is not None:
        if plugin.user is None:
            raise InputError(
                "Userinfo endpoint must be called with a token that represents a user principal"
            )
        # Backstage looks the user up by the presented token's own sub: a plugin token's
        # is the calling plugin, which has no stored user info (404 below).
        sub = plugin.subject.removeprefix("plugin:")
    else:
        sub = (await verify_user_token(services, token)).get("sub")
    if not isinstance(sub, str):
        raise InputError(
            "Userinfo endpoint must be called with a token that represents a user principal"
        )
    stored = await services.user_info.get(sub)
    if stored is None:
        # Backstage answers this one with express's default text body.
        return respond(b"User info not found", status=404, headers={"Content-Type": "text/plain"})
    return json_response(stored)


async def verify_user_token(services: Services, token: str) -> dict[str, Any]:
    """Verify a Backstage user token as other Backstage backends do (section 8.1).

    Raises:
        AuthenticationError: on any failure.
    """
    return await verify_own_user_token(services.token_issuer, services.clock, token)
