"""``microsoft``: Microsoft Entra ID (Azure AD) work, school and personal accounts.

Deltas from the OAuth2 base: endpoints of the ``tenantId``; ``domain_hint`` when
``domainHint`` is configured; required scopes ``email openid offline_access user.read``
with a custom scope transform for resource scopes; the profile is Microsoft Graph's
``/v1.0/me`` plus the 96x96 photo as a data URL (``skipUserProfile`` skips both); a token
for another resource reads Graph through one more refresh grant with Graph scopes.
(``plugins/auth-backend-module-microsoft-provider/src/authenticator.ts``, ``strategy.ts``;
passport-microsoft)
"""

from __future__ import annotations

import base64
from typing import Any

import httpx2
from pydantic import Field

from app.config.validation import validate_model
from app.identity.types import ProfileInfo
from app.oauth.scopes import merge_scopes
from app.providers.base import OAuthSession
from app.providers.oauth2_base import (
    OAuth2Authenticator,
    OAuth2ClientOptions,
    OAuth2Endpoints,
    decode_unverified_claims,
    email_verified_fact,
)
from app.providers.passport import (
    ServiceSettings,
    build_service_provider,
    facts,
    profile_url,
    text,
    transform_profile,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.resolvers_profile import MICROSOFT_RESOLVERS

# Its own sign-in resolvers (the registry adds Backstage's common ones).
RESOLVERS = MICROSOFT_RESOLVERS

LOGIN_URL = "https://login.microsoftonline.com"
GRAPH_URL = "https://graph.microsoft.com"
GRAPH_PROFILE_URL = f"{GRAPH_URL}/v1.0/me"
PHOTO_PATH = "/photos/96x96/$value"
REQUIRED_SCOPES = ("email", "openid", "offline_access", "user.read")
GRAPH_PROFILE_SCOPE = "openid email User.Read offline_access"
# Microsoft Graph's application id: the audience of Graph access tokens.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_READ_SCOPES = frozenset(
    {"user.read", "user.read.all", f"{GRAPH_URL}/user.read", f"{GRAPH_URL}/user.read.all"}
)


def microsoft_endpoints(tenant_id: str) -> OAuth2Endpoints:
    base = f"{LOGIN_URL}/{tenant_id}/oauth2/v2.0"
    return OAuth2Endpoints(f"{base}/authorize", f"{base}/token", GRAPH_PROFILE_URL)


def reads_graph(access_token: str) -> bool:
    """strategy.ts ``hasGraphReadScope``; a token that does not decode is left to Graph."""
    claims = decode_unverified_claims(access_token)
    if not claims:
        return True
    scopes = str(claims.get("scp") or "").lower().split(" ")
    # Graph accepts its URL as audience too, though Backstage only checks the id.
    return claims.get("aud") in {GRAPH_APP_ID, GRAPH_URL} and any(
        s in GRAPH_READ_SCOPES for s in scopes
    )


class MicrosoftAuthenticator(OAuth2Authenticator):
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES

    def __init__(self, options: OAuth2ClientOptions, *, skip_user_profile: bool = False) -> None:
        super().__init__(**options.constructor_args())
        self.skip_user_profile = skip_user_profile

    def transform_scopes(
        self,
        requested: list[str],
        granted: list[str],
        required: tuple[str, ...],
        additional: tuple[str, ...],
    ) -> list[str]:
        # A resource scope (<resource>/<scope>) cannot share a token with Graph scopes:
        # ask for it alone, plus offline_access for a refresh token.
        if any("/" in scope for scope in requested):
            return merge_scopes(requested, ["offline_access"])
        return super().transform_scopes(requested, granted, required, additional)

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        # Graph first, the ID token for the gaps; without Graph, the ID token alone.
        me: dict[str, Any] = {}
        photo = None
        token = None if self.skip_user_profile else await self._graph_token(session)
        if token is not None:
            me = await self.fetch_profile_json(token)
            photo = await self._photo(token)
        profile = transform_profile(
            email=text(me.get("mail")),
            display_name=text(me.get("displayName")) or text(me.get("id")),
            picture=photo,
            id_token=session.id_token,
        )
        # Graph's mail carries no verification flag; an address from the ID token may.
        verified = email_verified_fact(profile.email, decode_unverified_claims(session.id_token))
        return profile, {**facts(user_id=text(me.get("id"))), **verified}

    async def _graph_token(self, session: OAuthSession) -> str | None:
        if reads_graph(session.access_token):
            return session.access_token
        if session.refresh_token is None:
            return None
        # Microsoft refresh tokens are resource-agnostic: one more grant, with Graph scopes,
        # reads the profile while the session keeps the token it asked for.
        token = await self.token_request(
            "Failed to refresh access token",
            self.client.refresh_token(
                await self.token_endpoint(),
                refresh_token=session.refresh_token,
                scope=GRAPH_PROFILE_SCOPE,
            ),
        )
        return str(token["access_token"])

    async def _photo(self, access_token: str) -> str | None:
        """The 96x96 photo as a data URL; a user without one (404) or any failure: none."""
        try:
            response = await self.client.request(
                "GET",
                profile_url(self.endpoints) + PHOTO_PATH,
                headers={"Authorization": f"Bearer {access_token}"},
                withhold_token=True,
            )
        except httpx2.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return "data:image/jpeg;base64," + base64.b64encode(response.content).decode()


class MicrosoftSettings(ServiceSettings):
    tenantId: str = Field(min_length=1)
    domainHint: str | None = None
    skipUserProfile: bool = False


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(MicrosoftSettings, raw, path)
    return build_service_provider(
        lambda options: MicrosoftAuthenticator(options, skip_user_profile=settings.skipUserProfile),
        settings,
        microsoft_endpoints(settings.tenantId),
        deps,
        extra_authorize_params={"domain_hint": settings.domainHint}
        if settings.domainHint
        else None,
    )
