"""``okta``: an Okta org, through its org or a custom authorization server.

Deltas from the OAuth2 base: endpoints under ``audience`` (the Okta org URL, default
``https://okta.com``) and ``/oauth2[/<authServerId>]/v1/``; the authorize request carries
``idp`` when configured (routing to an identity provider Okta federates); required scopes
``openid email profile offline_access``; the profile is the userinfo endpoint's.
(``plugins/auth-backend-module-okta-provider/src/authenticator.ts``;
strategy ``@davidzemon/passport-okta-oauth``)
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from app.config.validation import validate_model
from app.identity.types import ProfileInfo
from app.providers.base import OAuthSession
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
    optional_http_url,
    text,
    transform_profile,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.resolvers_profile import OKTA_RESOLVERS

# Its own sign-in resolvers (the registry adds Backstage's common ones).
RESOLVERS = OKTA_RESOLVERS

DEFAULT_AUDIENCE = "https://okta.com"
REQUIRED_SCOPES = ("openid", "email", "profile", "offline_access")


def okta_endpoints(audience: str | None, auth_server_id: str | None) -> OAuth2Endpoints:
    base = (audience or DEFAULT_AUDIENCE).removesuffix("/") + "/oauth2"
    if auth_server_id:
        base += f"/{auth_server_id}"
    return OAuth2Endpoints(f"{base}/v1/authorize", f"{base}/v1/token", f"{base}/v1/userinfo")


class OktaAuthenticator(OAuth2Authenticator):
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        userinfo = await self.fetch_profile_json(session.access_token)
        sub = text(userinfo.get("sub"))
        username = text(userinfo.get("preferred_username"))
        profile = transform_profile(
            email=text(userinfo.get("email")),
            display_name=text(userinfo.get("name")) or username or sub,
            picture=None,  # passport-okta-oauth maps no picture; the ID token may have one
            id_token=session.id_token,
        )
        verified = email_verified_fact(
            profile.email, userinfo, decode_unverified_claims(session.id_token)
        )
        return profile, {**facts(user_id=sub, username=username, claims=userinfo), **verified}


class OktaSettings(ServiceSettings):
    audience: str | None = None
    authServerId: str | None = None
    idp: str | None = None

    _url = field_validator("audience")(optional_http_url)


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(OktaSettings, raw, path)
    return build_service_provider(
        OktaAuthenticator.from_options,
        settings,
        okta_endpoints(settings.audience, settings.authServerId),
        deps,
        extra_authorize_params={"idp": settings.idp} if settings.idp else None,
    )
