"""``oauth2``: a generic OAuth 2.0 authorization server, configured by URLs.

Deltas from the base: no required scopes, no extra authorize parameters; the client
authenticates in the body unless ``includeBasicAuth`` (passport-oauth2's behaviour); the
profile only has what an ``id_token`` says, if there is one.
(``plugins/auth-backend-module-oauth2-provider/src/authenticator.ts``)
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from app.config.validation import validate_model
from app.oauth.origins import absolute_http_url
from app.providers.oauth2_base import ClientCredentials, OAuth2Authenticator, OAuth2Endpoints
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.settings import OAuthEnvSettings, refuse_scope_key


class OAuth2Settings(OAuthEnvSettings):
    authorizationUrl: str
    tokenUrl: str
    includeBasicAuth: bool = False

    _urls = field_validator("authorizationUrl", "tokenUrl")(absolute_http_url)

    @model_validator(mode="before")
    @classmethod
    def _no_scope(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refuse_scope_key(data)
        return data


class OAuth2GenericAuthenticator(OAuth2Authenticator):
    """Nothing to add: the base is the generic provider."""


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(OAuth2Settings, raw, path)
    authenticator = OAuth2GenericAuthenticator(
        credentials=ClientCredentials(
            settings.clientId,
            settings.clientSecret,
            "client_secret_basic" if settings.includeBasicAuth else "client_secret_post",
        ),
        endpoints=OAuth2Endpoints(settings.authorizationUrl, settings.tokenUrl),
        additional_scopes=settings.additional_scopes,
        transport=deps.transport,
    )
    return OAuthProviderBuild(authenticator=authenticator, settings=settings)
