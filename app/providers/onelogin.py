"""``onelogin``: a OneLogin account, addressed by its OpenID Connect ``issuer``.

Deltas from the OAuth2 base: endpoints ``<issuer>/auth``, ``<issuer>/token`` and the
profile ``<issuer>/me`` (passport-onelogin-oauth); the scope is forced to ``openid`` at
start and on refresh, whatever was requested or configured; the ID token only fills
profile gaps (Backstage does not verify it either: the profile comes from ``/me``).
(``plugins/auth-backend-module-onelogin-provider/src/authenticator.ts``, ``resolvers.ts``;
passport-onelogin-oauth ``lib/oauth2.js``)
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from app.config.validation import validate_model
from app.identity.types import ProfileInfo
from app.oauth.origins import absolute_http_url
from app.providers.base import OAuthSession
from app.providers.oauth2_base import OAuth2Authenticator, OAuth2Endpoints
from app.providers.passport import (
    ServiceSettings,
    build_service_provider,
    facts,
    text,
    transform_profile,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.resolvers_profile import fact, matching_entity_name

FORCED_SCOPE = "openid"

RESOLVERS = {
    "usernameMatchingUserEntityName": matching_entity_name(
        fact("username"), missing="OneLogin user profile does not contain a username"
    ),
}


def onelogin_endpoints(issuer: str) -> OAuth2Endpoints:
    return OAuth2Endpoints(f"{issuer}/auth", f"{issuer}/token", f"{issuer}/me")


class OneLoginAuthenticator(OAuth2Authenticator):
    def transform_scopes(
        self,
        requested: list[str],
        granted: list[str],
        required: tuple[str, ...],
        additional: tuple[str, ...],
    ) -> list[str]:
        # Backstage overwrites the scope with "openid" in start and refresh alike.
        return [FORCED_SCOPE]

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        me = await self.fetch_profile_json(session.access_token)
        sub, username = text(me.get("sub")), text(me.get("preferred_username"))
        profile = transform_profile(
            email=text(me.get("email")),
            display_name=text(me.get("name")) or username or sub,
            picture=None,  # passport-onelogin-oauth maps none; the ID token may have one
            id_token=session.id_token,
        )
        return profile, facts(user_id=sub, username=username)


class OneLoginSettings(ServiceSettings):
    issuer: str

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        # The strategy appends "/auth" etc. as they are: a trailing slash would double up.
        return absolute_http_url(value).rstrip("/")


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(OneLoginSettings, raw, path)
    return build_service_provider(
        OneLoginAuthenticator.from_options, settings, onelogin_endpoints(settings.issuer), deps
    )
