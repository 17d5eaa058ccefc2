"""Wire rules of the authorization routes: Backstage's request validation (zod, answered
as ``invalid_request``), client credentials from HTTP Basic or the body, and who calls
(a Backstage user token, a service token of ``backend.auth.externalAccess``, or nobody)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from connexion import request
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from app.authz.errors import OAuthError
from app.config.authorization import can_parse_url
from app.core.errors import AuthenticationError, InputError
from app.handlers.context import Services
from app.handlers.identity import verify_user_token
from app.identity.entity_ref import parse_entity_ref, stringify_entity_ref
from app.identity.tokens import AUDIENCE, LIMITED_USER_TOKEN_TYPE, USER_TOKEN_TYPE

_BEARER = re.compile(r"^Bearer[ ]+(\S+)$", re.I)
_BASIC = re.compile(r"^Basic[ ]+(\S+)$", re.I)


def _invalid(message: str, key: str) -> OAuthError:
    return OAuthError("invalid_request", f'Validation error: {message} at "{key}"')


def string_fields(
    source: Any,
    *,
    required: Iterable[str] = (),
    required_urls: Iterable[str] = (),
    optional_urls: Iterable[str] = (),
) -> dict[str, str]:
    """The string values of a query or body; refuses what Backstage's zod schemas refuse.

    Raises:
        OAuthError: ``invalid_request``.
    """
    if source is None:
        source = {}
    if not isinstance(source, Mapping):
        raise OAuthError("invalid_request", "Validation error: Invalid input: expected object")
    out: dict[str, str] = {}
    for key, value in source.items():
        if not isinstance(value, str):
            if value is None:
                continue
            raise _invalid("Invalid input: expected string", str(key))
        if "\x00" in value:
            raise _invalid("Invalid input: NUL character", str(key))
        out[str(key)] = value
    required_urls = tuple(required_urls)
    for key in (*required, *required_urls):
        if not out.get(key):
            raise _invalid("Invalid input: expected string, received undefined", key)
    for key in (*required_urls, *optional_urls):
        if key in out and not can_parse_url(out[key]):
            raise _invalid("Invalid URL", key)
    return out


def client_credentials(
    authorization: str | None, body_id: str | None, body_secret: str | None
) -> tuple[str | None, str | None]:
    """HTTP Basic first (its parts form-decoded, RFC 6749 section 2.3.1), then the body."""
    match = _BASIC.match(authorization or "")
    if match:
        try:
            decoded = base64.b64decode(match.group(1) + "==", validate=False).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        client_id, colon, secret = decoded.partition(":")
        if colon and client_id:
            return unquote_plus(client_id), unquote_plus(secret)
    return body_id, body_secret


@dataclass(frozen=True)
class Principal:
    """``user_token``: the user token a user's credentials carry, the caller's own or, for
    a plugin calling on the user's behalf, the ``obo`` limited user token (never the
    plugin token itself, which is signed with the calling plugin's keys)."""

    kind: Literal["none", "user", "service"]
    subject: str = ""
    user_token: str | None = None


async def principal(services: Services) -> Principal:
    """Who calls, as Backstage's ``httpAuth.credentials`` sees it (no limited tokens).

    Raises:
        AuthenticationError: a token that is neither a valid user nor service token.
    """
    match = _BEARER.match(request.headers.get("authorization", ""))
    if not match:
        return Principal("none")
    token = match.group(1)
    # Backstage's order: plugin tokens, user tokens, then externalAccess tokens.
    if services.plugin_callers is not None and (
        plugin := await services.plugin_callers.verify(token)
    ):
        if plugin.user is not None:
            return Principal("user", plugin.user, plugin.limited_user_token)
        return Principal("service", plugin.subject)
    typ = _user_token_type(token)
    if typ is not None:
        claims = await verify_user_token(services, token)
        # A legacy token (no typ, aud backstage) is a full user token, as in Backstage.
        if typ == LIMITED_USER_TOKEN_TYPE:
            raise AuthenticationError("Illegal limited user token")
        return Principal("user", str(claims["sub"]), token)
    if services.callers is not None and (subject := await services.callers.subject(token)):
        return Principal("service", subject)
    raise AuthenticationError("Illegal token")


def _user_token_type(token: str) -> str | None:
    """The ``typ`` of a token Backstage's user-token handler takes as its own (a user or
    limited user ``typ``, or ``aud: backstage``), else None: anything else is left to the
    externalAccess handlers."""
    try:
        compact = extract_compact(token.encode())
        typ = compact.protected.get("typ")
        if typ in (USER_TOKEN_TYPE, LIMITED_USER_TOKEN_TYPE):
            return str(typ)
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError):
        return None
    if isinstance(claims, dict) and claims.get("aud") == AUDIENCE:
        return str(typ or "")
    return None


def redirect_target(app_base_url: str, session_id: str) -> str:
    base = app_base_url if app_base_url.endswith("/") else f"{app_base_url}/"
    return f"{base}oauth2/authorize/{session_id}"


def user_ref(body: Any) -> str:
    """``userEntityRef`` of the offline-sessions route, as a canonical user ref.

    Raises:
        InputError: with zod's wording.
    """
    value = body.get("userEntityRef") if isinstance(body, Mapping) else None
    if not isinstance(value, str) or not value:
        raise InputError(
            "Validation error: Invalid input: expected string, received undefined at "
            '"userEntityRef"'
        )
    try:
        kind, namespace, name = parse_entity_ref(value, default_kind="user")
    except ValueError as exc:
        raise InputError(f'Validation error: Error: {exc} at "userEntityRef"') from exc
    if kind.lower() != "user":
        raise InputError('Validation error: Must refer to a user entity at "userEntityRef"')
    return stringify_entity_ref(kind, namespace, name)
