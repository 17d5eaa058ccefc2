"""``github``: github.com or GitHub Enterprise Server, OAuth Apps and GitHub Apps.

Deltas from the OAuth2 base: fixed endpoints, or ``enterpriseInstanceUrl``; required scope
``read:user``, persisted (granted-scope cookie); the profile is the REST API's ``/user``
(passport-github2: no ``/user/emails`` call); an OAuth App's token never expires and comes
without a refresh token, so the access token itself is kept as the refresh token behind
``access-token-v2.`` and "refreshing" it re-reads the profile.
(``plugins/auth-backend-module-github-provider/src/authenticator.ts``)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import field_validator

from app.config.validation import validate_model
from app.core.errors import BackstageError
from app.identity.types import ProfileInfo
from app.providers.base import AuthenticateInput, AuthResult, OAuthSession, RefreshInput
from app.providers.oauth2_base import (
    OAuth2Authenticator,
    OAuth2Endpoints,
)
from app.providers.passport import (
    ServiceSettings,
    build_service_provider,
    facts,
    optional_http_url,
    text,
    transform_profile,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.resolvers_profile import GITHUB_RESOLVERS

# Its own sign-in resolvers (the registry adds Backstage's common ones).
RESOLVERS = GITHUB_RESOLVERS

GITHUB_AUTHORIZATION_URL = "https://github.com/login/oauth/authorize"
# Answers JSON only to "Accept: application/json", which Authlib sends to token endpoints.
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
GITHUB_PROFILE_URL = "https://api.github.com/user"
# GitHub Enterprise Server: the same paths under the instance, the API under /api/v3.
ENTERPRISE_PATHS = ("/login/oauth/authorize", "/login/oauth/access_token", "/api/v3/user")
REQUIRED_SCOPES = ("read:user",)
ACCESS_TOKEN_PREFIX = "access-token-v2."
# GitHub's names for invalid_grant, sent with HTTP 200.
INVALID_GRANT_ERRORS = frozenset({"invalid_grant", "bad_verification_code", "bad_refresh_token"})


def github_endpoints(enterprise_instance_url: str | None) -> OAuth2Endpoints:
    if not enterprise_instance_url:
        return OAuth2Endpoints(GITHUB_AUTHORIZATION_URL, GITHUB_TOKEN_URL, GITHUB_PROFILE_URL)
    base = enterprise_instance_url.removesuffix("/")
    authorize, token, profile = (base + path for path in ENTERPRISE_PATHS)
    return OAuth2Endpoints(authorize, token, profile)


class GithubAuthenticator(OAuth2Authenticator):
    persist_scopes = True
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES
    # GitHub's expired-code and expired-refresh-token errors are invalid_grant by other
    # names: the user must sign in again, the service is fine.
    reauthentication_errors = INVALID_GRANT_ERRORS

    async def authenticate(self, request: AuthenticateInput) -> AuthResult:
        result = await super().authenticate(request)
        session = result.session
        # OAuth App: no refresh token and no expiry; keep the token to re-check it on refresh.
        if session.refresh_token is None and session.expires_in_seconds is None:
            session = dataclasses.replace(
                session, refresh_token=ACCESS_TOKEN_PREFIX + session.access_token
            )
        return dataclasses.replace(result, session=session)

    async def refresh(self, request: RefreshInput) -> AuthResult:
        if not request.refresh_token.startswith(ACCESS_TOKEN_PREFIX):
            # GitHub App user tokens expire and use a standard refresh grant.
            return await super().refresh(request)
        # An OAuth App token cannot gain scope without the user's consent (a new popup).
        if not request.scope_already_granted:
            raise BackstageError("Refresh failed, session has not been granted the requested scope")
        session = OAuthSession(
            access_token=request.refresh_token.removeprefix(ACCESS_TOKEN_PREFIX),
            token_type="bearer",
            scope=request.scope,
            refresh_token=request.refresh_token,
        )
        profile, sign_in_facts = await self.load_profile(session)
        return AuthResult(session=session, profile=profile, sign_in_facts=sign_in_facts)

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        # A 401 means revoked, or the app uninstalled: only a new sign-in helps.
        user = await self.fetch_profile_json(
            session.access_token, unauthorized="Invalid access token"
        )
        login = text(user.get("login"))
        profile = transform_profile(
            email=text(user.get("email")),
            display_name=text(user.get("name")) or login or text(user.get("id")),
            picture=text(user.get("avatar_url")),
            id_token=session.id_token,
        )
        return profile, facts(
            username=login,
            user_id=text(user.get("id")),
            node_id=text(user.get("node_id")),
            profile_url=text(user.get("html_url")),
        )


class GithubSettings(ServiceSettings):
    enterpriseInstanceUrl: str | None = None

    _url = field_validator("enterpriseInstanceUrl")(optional_http_url)


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(GithubSettings, raw, path)
    return build_service_provider(
        GithubAuthenticator.from_options,
        settings,
        github_endpoints(settings.enterpriseInstanceUrl),
        deps,
    )
