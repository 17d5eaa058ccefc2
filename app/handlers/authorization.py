"""The authorization server's routes under ``/api/auth`` (Backstage's ``OidcRouter`` and
the offline-sessions route of its ``router.ts``): wire rules, credentials and the error
bodies; the rules themselves are ``app.authz``'s."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from connexion import request
from starlette.responses import Response

from app.authz.errors import OAuthError, from_error
from app.authz.service import AuthorizationServer, TokenGrant
from app.config.client_metadata import cli_client_id
from app.core.errors import AuthenticationError, BackstageError, NotAllowedError, NotFoundError
from app.handlers.authorization_wire import (
    Principal,
    client_credentials,
    principal,
    redirect_target,
    string_fields,
    user_ref,
)
from app.handlers.context import Services
from app.handlers.responses import json_response, redirect, respond

log = logging.getLogger(__name__)

# RFC 6749 section 5.1: token answers are never cached (Backstage sends neither).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_response(error: OAuthError, headers: Mapping[str, str] | None = None) -> Response:
    out = dict(headers or {})
    if error.status == 401 and error.code == "invalid_client":
        out["WWW-Authenticate"] = 'Basic realm="auth"'
    if error.status >= 500:
        log.error("OAuth request failed with status %s: %s", error.status, error.description)
    return json_response(error.body(), status=error.status, headers=out)


async def _oauth(
    run: Callable[[], Awaitable[Response]], *, headers: Mapping[str, str] | None = None
) -> Response:
    """Backstage's ``OidcError.fromError`` around a route."""
    try:
        return await run()
    except (OAuthError, BackstageError) as exc:
        return _oauth_response(from_error(exc), headers)


def _server(services: Services) -> AuthorizationServer:
    if services.authorization is None:
        # Not mounted without clients; the same answer as any unknown path.
        raise NotFoundError("Unknown auth provider 'v1'")
    return services.authorization


async def cli_client_metadata(services: Services) -> Response:
    """The Backstage CLI's Client ID Metadata Document (Backstage's fields)."""
    settings = services.settings
    if not settings.authorization.client_metadata.enabled:
        return json_response(
            {
                "error": "not_found",
                "error_description": "Client ID metadata documents not enabled",
            },
            status=404,
        )
    return json_response(
        {
            "client_id": cli_client_id(settings.auth_base_url),
            "client_name": "Backstage CLI",
            "redirect_uris": ["http://127.0.0.1:8055/callback"],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "none",
            "scope": "openid offline_access",
        }
    )


# -- /v1/authorize ---------------------------------------------------------------------


async def authorize(services: Services) -> Response:
    server = _server(services)
    try:
        query = string_fields(
            request.query_params,
            required_urls=("redirect_uri",),
            required=("client_id", "response_type"),
        )
    except OAuthError as exc:
        return _oauth_response(exc)
    # Refusals of the client or its redirect URI are Backstage's standard error body, and
    # never a redirect: the URI is not known to be the client's.
    view = await server.create_session(
        client_id=query["client_id"],
        redirect_uri=query["redirect_uri"],
        response_type=query["response_type"],
        scope=query.get("scope"),
        state=query.get("state"),
        nonce=query.get("nonce"),
        code_challenge=query.get("code_challenge"),
        code_challenge_method=query.get("code_challenge_method"),
    )
    return redirect(redirect_target(services.settings.app_base_url, view.session.id))


# -- /v1/sessions ----------------------------------------------------------------------


async def get_session(services: Services, sessionId: str) -> Response:  # noqa: N803
    server = _server(services)

    async def run() -> Response:
        view = await server.pending_session(sessionId)
        session = view.session
        body: dict[str, Any] = {
            "id": session.id,
            "clientId": session.client_id,
            "clientName": view.client_name,
        }
        if session.scope is not None:
            body["scope"] = session.scope
        body["redirectUri"] = session.redirect_uri
        if view.metadata_host is not None:
            body["clientHost"] = view.metadata_host
        return json_response(body)

    return await _oauth(run)


def _require_user(caller: Principal) -> str:
    if caller.kind != "user":
        raise OAuthError("access_denied", "Authentication required", 403)
    return caller.subject


async def approve_session(services: Services, sessionId: str) -> Response:  # noqa: N803
    server = _server(services)

    async def run() -> Response:
        user = _require_user(await principal(services))
        return json_response({"redirectUrl": await server.approve(sessionId, user)})

    return await _oauth(run)


async def reject_session(services: Services, sessionId: str) -> Response:  # noqa: N803
    server = _server(services)
    # Outside the OAuth mapping in Backstage: a bad token is its standard 401 body.
    caller = await principal(services)

    async def run() -> Response:
        user = _require_user(caller)
        return json_response({"redirectUrl": await server.reject(sessionId, user)})

    return await _oauth(run)


# -- /v1/token and /v1/revoke ----------------------------------------------------------


def _grant_body(grant: TokenGrant, *, code_grant: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
    }
    if code_grant:
        body["id_token"] = grant.id_token
        body["scope"] = grant.scope
    if grant.refresh_token:
        body["refresh_token"] = grant.refresh_token
    return body


async def token(services: Services, body: Any = None) -> Response:
    server = _server(services)

    async def run() -> Response:
        fields = string_fields(body, required=("grant_type",), optional_urls=("redirect_uri",))
        try:
            return await _token(server, fields)
        except AuthenticationError as exc:
            # Backstage: a failed grant is invalid_grant, not invalid_client.
            raise OAuthError("invalid_grant", exc.message, 400) from exc

    return await _oauth(run, headers=_NO_STORE)


async def _token(server: AuthorizationServer, fields: Mapping[str, str]) -> Response:
    client_id, client_secret = client_credentials(
        request.headers.get("authorization"), fields.get("client_id"), fields.get("client_secret")
    )
    authenticated: str | None = None
    if client_secret:
        if not client_id or not server.clients.verify_credentials(client_id, client_secret):
            raise OAuthError("invalid_client", "Invalid client credentials", 401)
        authenticated = client_id
    elif _has_basic() and not client_id:
        raise OAuthError("invalid_client", "Invalid client credentials", 401)
    grant_type = fields["grant_type"]
    if grant_type == "authorization_code":
        code, redirect_uri = fields.get("code"), fields.get("redirect_uri")
        if not code or not redirect_uri:
            raise OAuthError(
                "invalid_request",
                "Missing code or redirect_uri parameters for authorization_code grant",
            )
        grant = await server.exchange_code(
            client_id=authenticated or client_id,
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=fields.get("code_verifier"),
            authenticated_client_id=authenticated,
        )
        return json_response(_grant_body(grant, code_grant=True), headers=_NO_STORE)
    if grant_type == "refresh_token":
        refresh_token = fields.get("refresh_token")
        if not refresh_token:
            raise OAuthError(
                "invalid_request", "Missing refresh_token parameter for refresh_token grant"
            )
        grant = await server.refresh(
            refresh_token=refresh_token,
            client_id=authenticated or client_id,
            authenticated_client_id=authenticated,
        )
        return json_response(_grant_body(grant, code_grant=False), headers=_NO_STORE)
    raise OAuthError("unsupported_grant_type", f"Grant type {grant_type} is not supported")


def _has_basic() -> bool:
    header: str = request.headers.get("authorization", "")
    return header.lower().startswith("basic ")


async def revoke(services: Services, body: Any = None) -> Response:
    server = _server(services)

    async def run() -> Response:
        fields = string_fields(body or {}, required=("token",))
        client_id, client_secret = client_credentials(
            request.headers.get("authorization"),
            fields.get("client_id"),
            fields.get("client_secret"),
        )
        if not client_id:
            raise OAuthError("invalid_client", "Client authentication required", 401)
        if not server.clients.verify_revocation_client(client_id, client_secret):
            raise OAuthError("invalid_client", "Invalid client credentials", 401)
        try:
            await server.revoke(fields["token"], client_id)
        except BackstageError as exc:
            log.error("Failed to revoke token: %s", exc.message)
        return respond(b"", status=200, headers={"Content-Type": "text/html; charset=utf-8"})

    return await _oauth(run)


# -- /v1/offline-sessions/revoke -------------------------------------------------------


async def revoke_offline_sessions(services: Services, body: Any = None) -> Response:
    server = services.authorization
    if server is None or server.offline is None:
        raise NotFoundError("Unknown auth provider 'v1'")
    caller = await principal(services)
    if caller.kind == "none":
        raise AuthenticationError("Missing credentials")
    if caller.kind != "service":
        raise NotAllowedError(f"This endpoint does not allow '{caller.kind}' credentials")
    ref = user_ref(body)
    try:
        count = await server.revoke_for_user(ref)
    except BackstageError as exc:
        services.audit.event(
            "offline-sessions-revoke",
            provider="authorization",
            user=ref,
            caller=caller.subject,
            status="failed",
            reason=exc.message,
        )
        raise
    services.audit.event(
        "offline-sessions-revoke",
        provider="authorization",
        user=ref,
        caller=caller.subject,
        status="succeeded",
        revoked_count=count,
    )
    return json_response({"revokedCount": count})
