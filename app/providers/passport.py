"""What the providers Backstage builds on Passport strategies share (github, gitlab, google,
microsoft, okta, ...): plain helpers, no base class.

- ``PASSPORT_CLIENT_AUTH``: passport-oauth2 (the ``oauth`` library) sends the client
  credentials in the token request body, so that is what these services accept from Backstage.
- ``transform_profile``: ``PassportHelpers.transformProfile``
  (``plugins/auth-node/src/passport/PassportHelpers.ts``): the strategy's profile first,
  any gap filled from the ID token's claims.
- ``ServiceSettings``: these providers' endpoints are fixed by the service. ``x-endpoints``
  (ours, not Backstage's, hence the prefix) replaces any of them, for fakes in tests and
  for egress proxies::

      auth.providers.github.development:
        x-endpoints:
          authorizationUrl: https://...   # the browser goes here
          tokenUrl: https://...           # code exchange and refresh
          profileUrl: https://...         # the profile (GitHub /user, Graph /me, userinfo)
          revocationUrl: https://...      # logout revocation (google)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.identity.types import ProfileInfo
from app.oauth.origins import absolute_http_url
from app.providers.oauth2_base import (
    ClientCredentials,
    OAuth2Authenticator,
    OAuth2ClientOptions,
    OAuth2Endpoints,
    UpstreamError,
    decode_unverified_claims,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.settings import OAuthEnvSettings

PASSPORT_CLIENT_AUTH = "client_secret_post"


def text(value: Any) -> str | None:
    """A non-empty string from IdP JSON; numbers (GitHub and GitLab ids) become strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def optional_http_url(value: str | None) -> str | None:
    """A base-URL option (``enterpriseInstanceUrl``, ``audience``): absolute http(s) if set."""
    return absolute_http_url(value) if value else None


def profile_url(endpoints: OAuth2Endpoints) -> str:
    """The profile endpoint, which every factory here sets."""
    if endpoints.userinfo_url is None:
        raise UpstreamError("Failed to fetch user profile, no profile endpoint is configured")
    return endpoints.userinfo_url


def facts(**values: Any) -> dict[str, Any]:
    """Sign-in facts for resolvers, without the ones the profile lacked."""
    return {key: value for key, value in values.items() if value is not None}


def transform_profile(
    *,
    email: str | None,
    display_name: str | None,
    picture: str | None,
    id_token: str | None,
) -> ProfileInfo:
    """Backstage's profile transform: gaps are filled from the (unverified) ID token claims,
    which only ever fill the profile, never decide who signs in."""
    if not (email and display_name and picture) and id_token:
        claims = decode_unverified_claims(id_token)
        email = email or text(claims.get("email"))
        picture = picture or text(claims.get("picture"))
        display_name = display_name or text(claims.get("name"))
    return ProfileInfo(email=email, display_name=display_name, picture=picture)


class EndpointOverrides(BaseModel):
    """``x-endpoints``: absolute http(s) URLs replacing a provider's built-in endpoints."""

    # A misspelt key would silently keep the real endpoint: refuse it.
    model_config = ConfigDict(extra="forbid", frozen=True)

    authorizationUrl: str | None = None
    tokenUrl: str | None = None
    profileUrl: str | None = None
    revocationUrl: str | None = None

    @field_validator("authorizationUrl", "tokenUrl", "profileUrl", "revocationUrl")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return optional_http_url(value)

    def apply(self, endpoints: OAuth2Endpoints) -> OAuth2Endpoints:
        return OAuth2Endpoints(
            authorization_url=self.authorizationUrl or endpoints.authorization_url,
            token_url=self.tokenUrl or endpoints.token_url,
            userinfo_url=self.profileUrl or endpoints.userinfo_url,
            revocation_url=self.revocationUrl or endpoints.revocation_url,
        )


class ServiceSettings(OAuthEnvSettings):
    """An environment of a provider whose endpoints the service fixes."""

    x_endpoints: EndpointOverrides = Field(default_factory=EndpointOverrides, alias="x-endpoints")


def build_service_provider(
    make: Callable[[OAuth2ClientOptions], OAuth2Authenticator],
    settings: ServiceSettings,
    endpoints: OAuth2Endpoints,
    deps: ProviderDeps,
    *,
    client_auth: str = PASSPORT_CLIENT_AUTH,
    extra_authorize_params: Mapping[str, str] | None = None,
) -> OAuthProviderBuild:
    """The one way these providers are built: credentials, the service's endpoints (with
    ``x-endpoints`` applied), scopes and the shared transport; ``make`` adds the provider's
    own options (``SomeAuthenticator.from_options`` when it has none)."""
    options = OAuth2ClientOptions(
        credentials=ClientCredentials(settings.clientId, settings.clientSecret, client_auth),
        endpoints=settings.x_endpoints.apply(endpoints),
        additional_scopes=settings.additional_scopes,
        transport=deps.transport,
        extra_authorize_params=extra_authorize_params,
    )
    return OAuthProviderBuild(authenticator=make(options), settings=settings)
