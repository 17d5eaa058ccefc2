"""The OAuth flow: ``/start``, ``/handler/frame``, ``/refresh``, ``/logout``.

Every protocol rule lives here once, for every provider (Backstage
``plugins/auth-node/src/oauth/createOAuthRouteHandlers.ts``): environment selection,
origin and redirect allow-lists, the nonce cookie against the state, the
``X-Requested-With`` CSRF header, scope persistence, cookies and the error surfaces
(JSON before the callback's try block, the popup page or a redirect inside it).

One piece (over 300 lines), as Backstage's own: the four handlers share environment
selection, the state and nonce rules, scope persistence and the sealing of sessions, and
the order of the checks in each decides the error a user sees.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx2
from connexion import request
from starlette.responses import Response

from app.core.deadline import request_deadline, within_deadline
from app.core.errors import (
    AuthenticationError,
    BackstageError,
    InputError,
    NotAllowedError,
    NotFoundError,
    ServiceUnavailableError,
    serialize_error,
)
from app.handlers.context import OAuthEnvironment, OAuthProviderRuntime
from app.handlers.legacy_cookies import adopt_legacy_cookie
from app.handlers.responses import TOKEN_HEADERS, json_response, redirect, respond
from app.handlers.sign_in import sign_in_steps, traced_sign_in
from app.identity.types import SignInInfo
from app.oauth.flow_secrets import derive_flow_secrets
from app.oauth.origins import Origin, parse_origin
from app.oauth.scopes import join_scope, split_scope
from app.oauth.sessions import RefreshSession
from app.oauth.state import (
    OAuthState,
    decode_state,
    decode_state_fields,
    encode_state,
    state_from_fields,
)
from app.oauth.web_message import render_web_message
from app.providers.base import AuthenticateInput, AuthResult, LogoutInput, RefreshInput, StartInput
from app.providers.oauth2_base import UpstreamError
from app.refresh.coalescing import session_key

log = logging.getLogger(__name__)

NONCE_BYTES = 16
SESSION_ID_BYTES = 16
# How long a used state nonce is refused: six times the nonce cookie's life, and longer
# than an authorization code lives (RFC 6749 4.1.2: ten minutes at most).
USED_NONCE_SECONDS = 3600.0


def select_environment(
    runtime: OAuthProviderRuntime, env: str | None, state: str | None = None
) -> OAuthEnvironment:
    """Backstage's OAuthEnvironmentHandler: ``env`` query, else the state's ``env``.

    Raises:
        InputError: no env at all. NotAllowedError: undecodable state.
        NotFoundError: an env that is not configured.
    """
    if not env and state is not None:
        env = decode_state(state).env
    if not env:
        raise InputError("Must specify 'env' query to select environment")
    environment = runtime.environments.get(env)
    if environment is None:
        raise NotFoundError(
            f"No configuration available for the '{env}' environment of this provider."
        )
    return environment


def _check_csrf_header() -> None:
    # A custom header forces a CORS preflight, so other sites cannot send this request.
    if request.headers.get("x-requested-with") != "XMLHttpRequest":
        raise AuthenticationError("Invalid X-Requested-With header")


def _scopes(environment: OAuthEnvironment, requested: str | None, granted: str | None) -> str:
    auth = environment.authenticator
    return join_scope(
        auth.transform_scopes(
            split_scope(requested),
            split_scope(granted) if auth.persist_scopes else [],
            auth.required_scopes,
            auth.additional_scopes,
        )
    )


def _identity_provider_failed(exc: BaseException) -> bool:
    """The provider's own failure (UpstreamError), or a 503 caused by a call to the
    identity provider (its keys); not a database outage or a user's mistake."""
    if isinstance(exc, UpstreamError):
        return True
    if not isinstance(exc, ServiceUnavailableError):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, httpx2.HTTPError):
            return True
        cause = cause.__cause__
    return False


# -- /start ----------------------------------------------------------------------------


async def start(
    runtime: OAuthProviderRuntime,
    env: str | None = None,
    scope: str | None = None,
    origin: str | None = None,
    flow: str | None = None,
    redirect_url: str | None = None,
    **extra_params: str,
) -> Response:
    environment = select_environment(runtime, env)
    services = runtime.services
    app_origin: Origin | None = None
    try:
        if origin:
            app_origin = services.origin_filter.check_app_origin(origin)
        if flow == "redirect":
            services.origin_filter.check_redirect_url(redirect_url)
    except NotAllowedError as exc:
        services.audit.event("origin_refused", provider=runtime.provider_id, reason=exc.message)
        raise
    cookies = environment.cookies
    nonce = base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode()
    auth = environment.authenticator
    scope_value = _scopes(environment, scope, cookies.get_granted_scopes(request.cookies))
    state = OAuthState(
        nonce=nonce,
        env=environment.name,
        origin=str(app_origin) if app_origin else None,
        redirect_url=redirect_url,
        flow=flow,
        scope=scope_value if auth.persist_scopes else None,
    )
    try:
        result = await auth.start(
            StartInput(
                state=encode_state(state),
                scope=scope_value,
                callback_url=environment.callback_url,
                secrets=derive_flow_secrets(services.flow_key, nonce),
                extra_params={k: v for k, v in extra_params.items() if isinstance(v, str)},
            )
        )
    except ServiceUnavailableError as exc:
        if _identity_provider_failed(exc):
            services.idp_failures.record(runtime.provider_id, exc)
        raise
    return respond(
        status=result.status,
        headers={"Location": result.url},
        cookies=cookies.set_nonce(nonce, app_origin=app_origin),
    )


# -- /handler/frame --------------------------------------------------------------------


def _callback_params(body: Mapping[str, Any] | None) -> dict[str, str]:
    # The IdP's answer: the query, plus the form of a response_mode=form_post callback
    # (connexion has parsed that body already; the stream cannot be read twice).
    params = dict(request.query_params)
    for key, value in (body or {}).items():
        if isinstance(value, str):
            params.setdefault(key, value)
    return params


def _wants_json() -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept and "*/*" not in accept


async def frame_handler(
    runtime: OAuthProviderRuntime,
    env: str | None = None,
    state: str | None = None,
    body: Mapping[str, Any] | None = None,
) -> Response:
    environment = select_environment(runtime, env, state)
    services = runtime.services
    # What the error surfaces need, learnt as far as validation gets.
    reply_origin = services.app_origin
    fields = decode_state_fields(state or "")
    # The redirect flow answers errors with a redirect, even for a state that fails later.
    flow = fields.get("flow")
    try:
        # One deadline for all of it: the identity provider, the catalog, the writes.
        async with request_deadline(
            services.settings.request_deadline_seconds, "Authentication failed"
        ):
            decoded = state_from_fields(fields)
            if decoded.flow == "redirect":
                services.origin_filter.check_redirect_url(decoded.redirect_url)
            if decoded.origin is not None:
                reply_origin = services.origin_filter.check_app_origin(
                    decoded.origin, invalid=NotAllowedError
                )
            cookie_nonce = environment.cookies.get_nonce(request.cookies)
            if not cookie_nonce:
                raise NotAllowedError("Auth response is missing cookie nonce")
            if not hmac.compare_digest(cookie_nonce.encode(), decoded.nonce.encode()):
                raise NotAllowedError("Invalid nonce")
            params = _callback_params(body)
            # Each state signs in once, whatever nonce cookie comes with it (a replayed or a
            # planted one); claimed before the code is redeemed. An identity provider's
            # ?error= answer signs no one in and leaves the state as it was.
            if not params.get("error") and not await services.used_nonces.add(
                decoded.nonce, until=services.clock.now() + USED_NONCE_SECONDS
            ):
                raise NotAllowedError("Invalid nonce, the state was used already")
            result = await within_deadline(
                environment.deadline_seconds,
                environment.authenticator.authenticate(
                    AuthenticateInput(
                        params=params,
                        callback_url=environment.callback_url,
                        secrets=derive_flow_secrets(services.flow_key, decoded.nonce),
                    )
                ),
                "Authentication failed",
            )
            cookies: list[str] = []
            if environment.authenticator.persist_scopes:
                if decoded.scope is None:
                    raise AuthenticationError("No scope found in OAuth state")
                granted = decoded.scope
                cookies += environment.cookies.set_granted_scopes(
                    granted, app_origin=reply_origin, request_cookies=request.cookies
                )
            else:
                granted = result.session.scope
            response = await _client_auth_response(runtime, environment, result, granted)
            if result.session.refresh_token:
                sealed = _seal(
                    runtime,
                    environment,
                    RefreshSession(
                        refresh_token=result.session.refresh_token,
                        provider_id=runtime.provider_id,
                        env=environment.name,
                        scope=granted,
                        issued_at=int(services.clock.now()),
                        id_token=result.session.id_token,
                        session_id=secrets.token_urlsafe(SESSION_ID_BYTES),
                    ),
                )
                cookies += environment.cookies.set_refresh_token(
                    sealed, app_origin=reply_origin, request_cookies=request.cookies
                )
            # The nonce is single use: a replayed callback finds no cookie.
            cookies += environment.cookies.clear_nonce(app_origin=reply_origin)
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the app window
        if not isinstance(exc, BackstageError):
            log.exception("sign-in callback failed")
        if _identity_provider_failed(exc):
            services.idp_failures.record(runtime.provider_id, exc)
        error = serialize_error(exc)
        error.pop("cause", None)
        services.audit.event(
            "sign_in_failed",
            provider=runtime.provider_id,
            error=error["name"],
            reason=error["message"],
            **sign_in_steps(exc),
        )
        # A failed callback uses the nonce up too (if there was one to clear).
        spent = (
            environment.cookies.clear_nonce(app_origin=reply_origin)
            if environment.cookies.nonce_name in request.cookies
            else []
        )
        return _frame_error(error, flow, reply_origin, services.settings.app_base_url, spent)
    services.audit.event(
        "sign_in",
        provider=runtime.provider_id,
        user=response.get("backstageIdentity", {}).get("identity", {}).get("userEntityRef"),
    )
    if decoded.flow == "redirect" and decoded.redirect_url:
        return redirect(decoded.redirect_url, cookies=cookies)
    if _wants_json():
        return json_response(
            {"type": "auth-result", "payload": {**response["providerInfo"], **response}},
            cookies=cookies,
            headers=TOKEN_HEADERS,
        )
    message = {"type": "authorization_response", "response": response}
    page = render_web_message(message, str(reply_origin))
    return respond(page.body, headers=page.headers, cookies=cookies)


_REDIRECT_ERROR_TEXT = {
    "Error": "sign-in failed",
    "InputError": "the sign-in request was invalid",
    "AuthenticationError": "authentication failed",
    "NotAllowedError": "the sign-in request was not allowed",
    "NotFoundError": "the sign-in could not be resolved to a user",
    "ConflictError": "the sign-in matched more than one user",
    "TooManyRequestsError": "too many sign-in attempts",
    "ServiceUnavailableError": "the identity provider is unavailable",
}


def _frame_error(
    error: dict[str, Any],
    flow: str | None,
    origin: Origin,
    app_base_url: str,
    cookies: list[str],
) -> Response:
    if flow == "redirect":
        # Backstage: back to the app with ?error=<message>, fragment dropped. Messages
        # can quote the state, the request or the provider (text an attacker chooses,
        # shown in the address bar): the redirect carries the name and a fixed text; the
        # message is in the audit log.
        name = error["name"] if error["name"] in _REDIRECT_ERROR_TEXT else "Error"
        parts = urlsplit(app_base_url)
        target = urlunsplit(
            (
                parts.scheme,
                parts.netloc,
                parts.path or "/",
                urlencode({"error": f"{name}: {_REDIRECT_ERROR_TEXT[name]}"}),
                "",
            )
        )
        return redirect(target, cookies=cookies)
    if _wants_json():
        return json_response(
            {"type": "auth-result", "error": error}, headers=TOKEN_HEADERS, cookies=cookies
        )
    page = render_web_message({"type": "authorization_response", "error": error}, str(origin))
    return respond(page.body, headers=page.headers, cookies=cookies)


# The same handler for each operation of the callback (operationIds are unique per document).
frame_handler_alias = frame_handler
frame_handler_form_post = frame_handler


async def _client_auth_response(
    runtime: OAuthProviderRuntime,
    environment: OAuthEnvironment,
    result: AuthResult,
    granted_scope: str,
) -> dict[str, Any]:
    session = result.session
    provider_info = session.provider_info()
    provider_info["scope"] = granted_scope
    response: dict[str, Any] = {"profile": result.profile.to_json(), "providerInfo": provider_info}
    if environment.sign_in is not None:
        identity = await traced_sign_in(
            runtime.services,
            environment.sign_in,
            SignInInfo(runtime.provider_id, result.profile, result.sign_in_facts),
        )
        response["backstageIdentity"] = identity.to_json()
    return response


# -- /refresh --------------------------------------------------------------------------


async def refresh(
    runtime: OAuthProviderRuntime,
    env: str | None = None,
    scope: str | None = None,
    optional: str | None = None,
) -> Response:
    environment = select_environment(runtime, env)
    _check_csrf_header()
    cookies_in: Mapping[str, str] = request.cookies
    app_origin = parse_origin(request.headers.get("origin", ""))
    manager = environment.cookies
    auth = environment.authenticator
    try:
        async with request_deadline(
            runtime.services.settings.request_deadline_seconds, "Failed to refresh access token"
        ):
            sealed = manager.get_refresh_token(cookies_in)
            if not sealed:
                raise InputError("Missing session cookie")
            # Opened before any call to the identity provider: a forged cookie costs nothing.
            legacy: RefreshSession | None = None
            try:
                session = _open(runtime, environment, sealed)
            except AuthenticationError:
                # Backstage's raw cookie, within the switch's window (docs/migrating-...).
                legacy = await adopt_legacy_cookie(runtime, environment, sealed, scope or "")
                if legacy is None:
                    raise
                session = legacy
            if session.session_id and await runtime.services.ended_sessions.contains(
                session.session_id
            ):
                # Signed out: a copy of the cookie taken before is worth nothing.
                raise AuthenticationError("Session ended")
            granted_cookie = manager.get_granted_scopes(cookies_in)
            scope_value = _scopes(environment, scope, granted_cookie)
            already_granted = None
            if auth.persist_scopes:
                granted = set(split_scope(granted_cookie))
                already_granted = all(s in granted for s in split_scope(scope_value))
            refresh_input = RefreshInput(
                refresh_token=session.refresh_token,
                scope=scope_value,
                scope_already_granted=already_granted,
            )
            # Racing refreshes of one session share one upstream call (rotation-safe).
            result, reused = await runtime.services.refresh_coordinator.run(
                session_key(
                    runtime.provider_id, environment.name, session.refresh_token, scope_value
                ),
                lambda: within_deadline(
                    environment.deadline_seconds,
                    auth.refresh(refresh_input),
                    "Failed to refresh access token",
                ),
            )
            cookies: list[str] = []
            if auth.persist_scopes:
                granted_scope = scope_value
                cookies += manager.set_granted_scopes(
                    scope_value, app_origin=app_origin, request_cookies=cookies_in
                )
            else:
                granted_scope = result.session.scope
            new_token = result.session.refresh_token
            # An adopted Backstage cookie is answered with a sealed one, rotated or not.
            if legacy is not None or (new_token and new_token != session.refresh_token):
                rotated = dataclasses.replace(
                    session,
                    refresh_token=new_token or session.refresh_token,
                    scope=granted_scope,
                    id_token=result.session.id_token or session.id_token,
                )
                cookies += manager.set_refresh_token(
                    _seal(runtime, environment, rotated),
                    app_origin=app_origin,
                    request_cookies=cookies_in,
                )
            response = await _client_auth_response(runtime, environment, result, granted_scope)
    except Exception as exc:
        if not isinstance(exc, BackstageError):
            log.exception("refresh failed")
        if _identity_provider_failed(exc):
            runtime.services.idp_failures.record(runtime.provider_id, exc)
        runtime.services.audit.event(
            "refresh_failed",
            provider=runtime.provider_id,
            reason=serialize_error(exc)["message"],
            **sign_in_steps(exc),
        )
        raise AuthenticationError("Refresh failed", cause=exc) from exc
    runtime.services.audit.event(
        "refresh_reused" if reused else "refresh", provider=runtime.provider_id
    )
    return json_response(response, cookies=cookies, headers=TOKEN_HEADERS)


refresh_post = refresh


# -- /logout ---------------------------------------------------------------------------


async def logout(runtime: OAuthProviderRuntime, env: str | None = None) -> Response:
    environment = select_environment(runtime, env)
    _check_csrf_header()
    raw_origin = request.headers.get("origin")
    try:
        runtime.services.origin_filter.check_header_origin(raw_origin)
    except NotAllowedError as exc:
        runtime.services.audit.event(
            "origin_refused", provider=runtime.provider_id, reason=exc.message
        )
        raise
    cookies_in: Mapping[str, str] = request.cookies
    manager = environment.cookies
    session: RefreshSession | None = None
    sealed = manager.get_refresh_token(cookies_in)
    if sealed:
        try:
            session = _open(runtime, environment, sealed)
        except AuthenticationError:
            # Nothing to revoke; the cookies are cleared all the same.
            runtime.services.audit.event("logout_invalid_session", provider=runtime.provider_id)
    if session is not None and session.session_id:
        # Ended here first, on every instance, whatever the provider then does.
        await runtime.services.ended_sessions.add(
            session.session_id,
            until=session.issued_at + environment.cookies.session_max_age_seconds,
        )
    result = await environment.authenticator.logout(
        LogoutInput(
            refresh_token=session.refresh_token if session else None,
            app_origin=raw_origin,
            id_token=session.id_token if session else None,
            post_logout_redirect_uri=environment.post_logout_redirect_uri,
        )
    )
    app_origin = parse_origin(raw_origin or "")
    cookies = manager.clear_refresh_token(app_origin=app_origin, request_cookies=cookies_in)
    if environment.authenticator.persist_scopes:
        cookies += manager.clear_granted_scopes(app_origin=app_origin, request_cookies=cookies_in)
    runtime.services.audit.event("logout", provider=runtime.provider_id)
    if result.logout_url and _is_safe_logout_url(result.logout_url):
        return json_response({"logoutUrl": result.logout_url}, cookies=cookies)
    return respond(cookies=cookies)


def _seal(
    runtime: OAuthProviderRuntime, environment: OAuthEnvironment, session: RefreshSession
) -> str:
    return runtime.services.sessions.seal(
        session, cookie_name=environment.cookies.refresh_token_name
    )


def _open(
    runtime: OAuthProviderRuntime, environment: OAuthEnvironment, sealed: str
) -> RefreshSession:
    session = runtime.services.sessions.open(
        sealed,
        cookie_name=environment.cookies.refresh_token_name,
        provider_id=runtime.provider_id,
        env=environment.name,
    )
    # The cookie's Max-Age is the session's absolute lifetime: a copy kept past it (or
    # replayed by someone else) is worth nothing either.
    age = runtime.services.clock.now() - session.issued_at
    if age > environment.cookies.session_max_age_seconds:
        raise AuthenticationError("Session expired")
    return session


def _is_safe_logout_url(url: str) -> bool:
    # Backstage passes a provider logout URL on only if it is https or on localhost.
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "localhost")
