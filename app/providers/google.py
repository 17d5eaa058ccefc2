"""``google``: Google accounts (consumer and Workspace).

Deltas from the OAuth2 base: fixed endpoints (passport-google-oauth20's); the authorize
request asks for offline access with a consent prompt, so every sign-in gets a refresh
token, and keeps earlier grants (``include_granted_scopes``); required scopes ``openid``
plus the userinfo email and profile scopes; the profile is the v3 userinfo; logout revokes
the refresh token at Google.
(``plugins/auth-backend-module-google-provider/src/authenticator.ts``)
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2

from app.config.validation import validate_model
from app.identity.types import ProfileInfo
from app.providers.base import LogoutInput, LogoutResult, OAuthSession
from app.providers.oauth2_base import (
    OAuth2Authenticator,
    OAuth2Endpoints,
    decode_unverified_claims,
    email_verified_fact,
)
from app.providers.passport import (
    ServiceSettings,
    build_service_provider,
    facts,
    text,
    transform_profile,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.resolvers_profile import GOOGLE_RESOLVERS

# Its own sign-in resolvers (the registry adds Backstage's common ones).
RESOLVERS = GOOGLE_RESOLVERS

log = logging.getLogger(__name__)

GOOGLE_ENDPOINTS = OAuth2Endpoints(
    authorization_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://www.googleapis.com/oauth2/v4/token",
    userinfo_url="https://www.googleapis.com/oauth2/v3/userinfo",
    revocation_url="https://oauth2.googleapis.com/revoke",
)
# passport-google-oauth20's rendering of Backstage's accessType/prompt, plus incremental auth.
AUTHORIZE_PARAMS = {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}
REQUIRED_SCOPES = (
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
)


class GoogleAuthenticator(OAuth2Authenticator):
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        # The userinfo endpoint, not the ID token: it is what passport-google-oauth20 reads.
        userinfo = await self.fetch_profile_json(session.access_token)
        sub = text(userinfo.get("sub"))
        profile = transform_profile(
            email=text(userinfo.get("email")),
            display_name=text(userinfo.get("name")) or sub,
            picture=text(userinfo.get("picture")),
            id_token=session.id_token,
        )
        verified = email_verified_fact(
            profile.email, userinfo, decode_unverified_claims(session.id_token)
        )
        return profile, {**facts(user_id=sub, claims=userinfo), **verified}

    async def logout(self, request: LogoutInput) -> LogoutResult:
        # Backstage revokes the refresh token, which ends the grant along with the session.
        url = self.endpoints.revocation_url
        if not request.refresh_token or not url:
            return LogoutResult()
        try:
            # google-auth-library's revokeToken: the token alone, no client authentication.
            response = await self.client.request(
                "POST", url, data={"token": request.refresh_token}, withhold_token=True
            )
            if response.status_code >= 400:
                log.warning("google token revocation answered %s", response.status_code)
        except httpx2.HTTPError as exc:
            # The cookies are cleared regardless: a failed revocation must not keep the user
            # signed in here.
            log.warning("google token revocation failed: %s", exc.__class__.__name__)
        return LogoutResult()


class GoogleSettings(ServiceSettings):
    """No options beyond the common ones."""


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(GoogleSettings, raw, path)
    return build_service_provider(
        GoogleAuthenticator.from_options,
        settings,
        GOOGLE_ENDPOINTS,
        deps,
        extra_authorize_params=AUTHORIZE_PARAMS,
    )
