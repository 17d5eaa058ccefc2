"""``atlassian``: Atlassian Cloud (Jira, Confluence) through OAuth 2.0 (3LO).

Deltas from the OAuth2 base: Atlassian's fixed endpoints; the authorize request carries
passport-atlassian-oauth2's fixed ``audience=api.atlassian.com`` and ``prompt=consent``;
required scopes ``offline_access read:me read:jira-work read:jira-user``; a ``scope`` or
``scopes`` key is a startup error; the profile is ``https://api.atlassian.com/me``.
The strategy maps no ``username`` (only ``account_id``, ``name``, ``email``, ``picture``), so
``usernameMatchingUserEntityName`` always fails here, as in Backstage; the user-editable
``nickname`` is deliberately not used in its place. Atlassian rotates refresh tokens, which
the base handles.
(``plugins/auth-backend-module-atlassian-provider/src/authenticator.ts``, ``resolvers.ts``;
passport-atlassian-oauth2 ``lib/strategy.js``)
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from app.config.validation import validate_model
from app.identity.types import ProfileInfo
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

AUTHORIZATION_URL = "https://auth.atlassian.com/authorize"
TOKEN_URL = "https://auth.atlassian.com/oauth/token"
PROFILE_URL = "https://api.atlassian.com/me"
REQUIRED_SCOPES = ("offline_access", "read:me", "read:jira-work", "read:jira-user")
AUTHORIZE_PARAMS = {"audience": "api.atlassian.com", "prompt": "consent"}
SCOPE_KEY_REFUSED = (
    'The atlassian provider no longer supports the "scope" or "scopes" configuration '
    'options. Please use the "additionalScopes" option instead.'
)

RESOLVERS = {
    "usernameMatchingUserEntityName": matching_entity_name(
        fact("username"), missing="Atlassian user profile does not contain a username"
    ),
}


class AtlassianAuthenticator(OAuth2Authenticator):
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        me = await self.fetch_profile_json(session.access_token)
        profile = transform_profile(
            email=text(me.get("email")),
            display_name=text(me.get("name")),
            picture=text(me.get("picture")),
            id_token=session.id_token,
        )
        return profile, facts(user_id=text(me.get("account_id")))


class AtlassianSettings(ServiceSettings):
    @model_validator(mode="before")
    @classmethod
    def _no_scope(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("scope" in data or "scopes" in data):
            raise ValueError(SCOPE_KEY_REFUSED)
        return data


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(AtlassianSettings, raw, path)
    return build_service_provider(
        AtlassianAuthenticator.from_options,
        settings,
        OAuth2Endpoints(AUTHORIZATION_URL, TOKEN_URL, PROFILE_URL),
        deps,
        # passport-atlassian-oauth2's authorizationParams, on every authorize request.
        extra_authorize_params=AUTHORIZE_PARAMS,
    )
