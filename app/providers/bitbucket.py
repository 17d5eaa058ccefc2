"""``bitbucket``: Bitbucket Cloud (bitbucket.org).

Deltas from the OAuth2 base: Bitbucket's fixed endpoints; required scope ``account``,
persisted (granted-scope cookie + state); the client authenticates with HTTP Basic
(passport-bitbucket-oauth2); the profile is the REST API's ``/2.0/user``. Ours on top of
Backstage, which maps neither: ``picture`` is the account's avatar and ``email`` its primary
*confirmed* address from ``/2.0/user/emails`` (the ``account`` scope covers it), fetched
best-effort so a failure there never blocks a sign-in.
(``plugins/auth-backend-module-bitbucket-provider/src/authenticator.ts``, ``resolvers.ts``;
passport-bitbucket-oauth2 ``lib/passport-bitbucket-oauth2/{strategy,profile}.js``)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx2

from app.config.validation import validate_model
from app.identity.resolvers import ResolverFactory, SignInResolver, validate_options
from app.identity.types import ProfileInfo
from app.providers.base import OAuthSession
from app.providers.oauth2_base import (
    OAuth2Authenticator,
    OAuth2Endpoints,
    UpstreamError,
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
from app.providers.resolvers_profile import fact, fixed, matching_annotation

log = logging.getLogger(__name__)

AUTHORIZATION_URL = "https://bitbucket.org/site/oauth2/authorize"
TOKEN_URL = "https://bitbucket.org/site/oauth2/access_token"
PROFILE_URL = "https://api.bitbucket.org/2.0/user"
REQUIRED_SCOPES = ("account",)


def _no_options(factory: ResolverFactory) -> ResolverFactory:
    """Backstage's Bitbucket resolvers take no options (no options schema)."""

    def create(options: Mapping[str, Any]) -> SignInResolver:
        validate_options(options, {})
        return factory({})

    return create


RESOLVERS = {
    "userIdMatchingUserEntityAnnotation": _no_options(
        matching_annotation(
            fact("user_id"),
            fixed("bitbucket.org/user-id"),
            missing="Bitbucket user profile does not contain an ID",
        )
    ),
    "usernameMatchingUserEntityAnnotation": _no_options(
        matching_annotation(
            fact("username"),
            fixed("bitbucket.org/username"),
            missing="Bitbucket user profile does not contain a Username",
        )
    ),
}


class BitbucketAuthenticator(OAuth2Authenticator):
    persist_scopes = True
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        url = profile_url(self.endpoints)
        user = await self.fetch_profile_json(session.access_token, url)
        avatar = _member(_member(user, "links"), "avatar")
        uuid, username = text(user.get("uuid")), text(user.get("username"))
        profile = transform_profile(
            email=await self._primary_email(f"{url}/emails", session.access_token),
            display_name=text(user.get("display_name")) or username or uuid,
            picture=text(avatar.get("href")),
            id_token=session.id_token,
        )
        return profile, facts(user_id=uuid, username=username)

    async def _primary_email(self, url: str, access_token: str) -> str | None:
        try:
            page = await self.fetch_profile_json(access_token, url)
        except (UpstreamError, httpx2.HTTPError, ValueError) as exc:
            log.warning("Bitbucket emails unavailable, signing in without one: %s", exc)
            return None
        values = page.get("values")
        for entry in values if isinstance(values, list) else []:
            # Only a confirmed address may match a catalog user's email.
            if isinstance(entry, dict) and entry.get("is_primary") and entry.get("is_confirmed"):
                return text(entry.get("email"))
        return None


def _member(value: dict[str, Any], key: str) -> dict[str, Any]:
    found = value.get(key)
    return found if isinstance(found, dict) else {}


class BitbucketSettings(ServiceSettings):
    """Only the common keys: Backstage's Bitbucket Cloud provider has no others."""


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(BitbucketSettings, raw, path)
    return build_service_provider(
        BitbucketAuthenticator.from_options,
        settings,
        OAuth2Endpoints(AUTHORIZATION_URL, TOKEN_URL, PROFILE_URL),
        deps,
        # passport-bitbucket-oauth2 authenticates the client with HTTP Basic.
        client_auth="client_secret_basic",
    )
