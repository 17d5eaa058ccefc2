"""The development identity provider: a Flask app on Authlib's authorization server.

Routes, relative to where it is mounted (``/dev-idp``):

| route | what |
|---|---|
| ``GET /.well-known/openid-configuration`` | discovery |
| ``GET /jwks`` | the RS256 key that signs ID tokens (generated at start) |
| ``GET, POST /authorize`` | login page (pick a demo user or type a name), then 302 to the client |
| ``POST /token`` | authorization code (PKCE S256 required) and refresh token (rotated) grants |
| ``GET, POST /userinfo`` | claims of the access token's user |
| ``POST /revoke`` | RFC 7009; revoking ends the whole sign-in |
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.discovery import OpenIDProviderMetadata
from flask import Flask, Response, jsonify, render_template_string, request
from joserfc.jwk import RSAKey

from app.devidp.grants import (
    ACCESS_TOKEN_LIFETIME_SECONDS,
    ID_TOKEN_ALGORITHM,
    DevAuthorizationCodeGrant,
    DevBearerTokenValidator,
    DevOpenIDCode,
    DevRefreshIdToken,
    DevRefreshTokenGrant,
    DevRevocationEndpoint,
    DevUserInfoEndpoint,
    save_token,
)
from app.devidp.login_page import ERROR_PAGE, LOGIN_PAGE, PAGE_HEADERS
from app.devidp.models import SUPPORTED_SCOPES, DevClient
from app.devidp.settings import DevIdpSettings, DevUser, username_from
from app.devidp.store import MemoryStore

log = logging.getLogger(__name__)

_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE is required, and only S256 (RFC 9700 2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE: 'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class DevAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, app: Flask, *, store: MemoryStore, issuer: str) -> None:
        self.store = store
        self.issuer = issuer
        super().__init__(app, query_client=store.clients.get, save_token=self._save)

    def _save(self, token: dict[str, Any], oauth_request: Any) -> None:
        save_token(self.store, token, oauth_request)


class DevIdentityProvider:
    """One provider: its key, its store, its Flask app (``wsgi_app``)."""

    def __init__(self, settings: DevIdpSettings) -> None:
        self.settings = settings
        self.issuer = settings.issuer
        self.users = {u.username: u for u in settings.users}
        self.key = RSAKey.generate_key(
            2048, parameters={"use": "sig", "alg": ID_TOKEN_ALGORITHM}, auto_kid=True
        )
        self.store = MemoryStore({c.client_id: DevClient(c) for c in settings.clients})
        self.app = self._flask_app()
        self.metadata = self._metadata()

    @property
    def wsgi_app(self) -> Flask:
        return self.app

    def _metadata(self) -> dict[str, Any]:
        base = self.issuer
        doc: dict[str, Any] = {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "revocation_endpoint": f"{base}/revoke",
            "scopes_supported": list(SUPPORTED_SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
            "token_endpoint_auth_methods_supported": _AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "name",
                "preferred_username",
                "email",
                "email_verified",
            ],
            "prompt_values_supported": ["none", "login"],
        }
        OpenIDProviderMetadata(doc).validate()
        return doc

    def _flask_app(self) -> Flask:
        app = Flask(__name__)
        app.config.update(
            OAUTH2_REFRESH_TOKEN_GENERATOR=True,
            OAUTH2_TOKEN_EXPIRES_IN={
                "authorization_code": ACCESS_TOKEN_LIFETIME_SECONDS,
                "refresh_token": ACCESS_TOKEN_LIFETIME_SECONDS,
            },
        )
        server = DevAuthorizationServer(app, store=self.store, issuer=self.issuer)
        server.register_grant(
            DevAuthorizationCodeGrant,
            [
                S256CodeChallenge(required=True),
                DevOpenIDCode(issuer=self.issuer, key=self.key, store=self.store),
            ],
        )
        server.register_grant(
            DevRefreshTokenGrant, [DevRefreshIdToken(issuer=self.issuer, key=self.key)]
        )
        server.register_endpoint(DevRevocationEndpoint)
        protector = ResourceProtector()
        protector.register_token_validator(DevBearerTokenValidator(self.store))
        server.register_endpoint(DevUserInfoEndpoint(resource_protector=protector))
        self._routes(app, server)
        return app

    # -- routes ----------------------------------------------------------------------

    def _routes(self, app: Flask, server: DevAuthorizationServer) -> None:
        @app.get("/.well-known/openid-configuration")
        def discovery() -> Response:
            return jsonify(self.metadata)

        @app.get("/jwks")
        def jwks() -> Response:
            return jsonify({"keys": [self.key.as_dict(private=False)]})

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            return self._authorize(server)

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        @app.route("/userinfo", methods=["GET", "POST"])
        def userinfo() -> Any:
            return server.create_endpoint_response("userinfo")

        @app.post("/revoke")
        def revoke() -> Any:
            return server.create_endpoint_response("revocation")

        @app.get("/")
        def index() -> Response:
            return jsonify(
                {
                    "name": "backstage-auth-backend development identity provider",
                    "discovery": f"{self.issuer}/.well-known/openid-configuration",
                    "users": [u.username for u in self.settings.users],
                    "clients": [c.client_id for c in self.settings.clients],
                }
            )

    def _authorize(self, server: DevAuthorizationServer) -> Any:
        if request.method == "POST" and not self._same_origin_post():
            return self._page(ERROR_PAGE, 403, error="cross-origin sign-in form refused")
        user: DevUser | None = None
        if request.method == "POST" and request.form.get("action") != "cancel":
            user = self._chosen_user()
            if user is None:
                return self._login_page(server, error="Pick a user or type a name.")
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            if error.redirect_uri:
                # The client and redirect URI are valid: the client hears the error.
                return server.handle_error_response(None, error)
            return self._page(
                ERROR_PAGE, error.status_code, error=error.error, description=error.description
            )
        if request.method == "GET":
            # prompt=none without a user already failed above (login_required): this
            # provider keeps no sessions, so every sign-in shows the login page.
            return self._render_login(grant)
        if user is not None:
            log.info("development identity provider: signed in %s", user.username)
        # A POST without a user is Cancel: access_denied back to the client.
        return server.create_authorization_response(grant_user=user, grant=grant)

    def _login_page(self, server: DevAuthorizationServer, *, error: str) -> Any:
        try:
            grant = server.get_consent_grant(end_user=None)
        except OAuth2Error as exc:
            return self._page(
                ERROR_PAGE, exc.status_code, error=exc.error, description=exc.description
            )
        return self._render_login(grant, error=error, status=400)

    def _render_login(self, grant: Any, *, error: str = "", status: int = 200) -> Response:
        return self._page(
            LOGIN_PAGE,
            status,
            client_id=grant.client.get_client_id(),
            scope=grant.request.payload.scope or "",
            users=self.settings.users,
            issuer=self.issuer,
            error=error,
        )

    def _chosen_user(self) -> DevUser | None:
        chosen = request.form.get("user", "")
        if chosen in self.users:
            return self.users[chosen]
        typed = request.form.get("name", "").strip()[:100]
        username = username_from(typed)
        if username is None:
            return None
        return self.users.get(username) or DevUser(username, typed)

    def _same_origin_post(self) -> bool:
        """The login form posts to itself; refuse a form posted from another site (a page
        elsewhere signing the browser in as a user of its choosing)."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site in ("same-origin", "none")
        origin = request.headers.get("Origin")
        issuer = urlsplit(self.issuer)
        return origin is None or origin == f"{issuer.scheme}://{issuer.netloc}"

    def _page(self, template: str, status: int, **context: Any) -> Response:
        body = render_template_string(template, **context)
        return Response(body, status=status, headers=PAGE_HEADERS, mimetype="text/html")
