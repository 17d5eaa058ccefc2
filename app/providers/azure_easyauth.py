"""``azureEasyAuth``: users signed in by Azure App Service authentication ("Easy Auth").

App Service's authentication layer forwards the user's Entra ID tokens in
``x-ms-token-aad-id-token`` and ``x-ms-token-aad-access-token``. The ID token is decoded,
not verified (as Backstage does: App Service validated it), and must be ``ver`` 2.0.
Profile: ``displayName`` = ``name``, ``email`` = ``email``; ``providerInfo`` is
``{accessToken}`` (omitted members stay omitted).

Two guards, because those headers prove nothing by themselves:

* At startup, as Backstage does, the App Service environment must show that
  authentication is on: ``WEBSITE_SKU`` set, ``WEBSITE_AUTH_ENABLED=true``,
  ``WEBSITE_AUTH_DEFAULT_PROVIDER=AzureActiveDirectory``, ``WEBSITE_AUTH_TOKEN_STORE=true``
  (case-insensitive); otherwise the server does not start.
* Ours: the request's direct peer must be one of ``trustedProxies`` (addresses or CIDRs
  of the App Service front end that injects the headers); without the setting every
  request is refused with a 401 that names it.

Config (``auth.providers.azureEasyAuth``): ``trustedProxies`` (ours), ``signIn``.
(``plugins/auth-backend-module-azure-easyauth-provider/src/authenticator.ts``, ``module.ts``)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from app.config.validation import ConfigError, validate_model
from app.core.errors import AuthenticationError
from app.core.values import non_empty_str
from app.identity.resolvers import (
    COMMON_RESOLVERS,
    AuthResolverContext,
    ResolverFactory,
    SignInResolver,
    validate_options,
)
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.providers.base import ProxyRequest, ProxyResult
from app.providers.jwt_verify import decode_unverified
from app.providers.proxy_trust import (
    HeaderTrustSettings,
    TrustedProxies,
    build_trusted_proxies,
    header,
)
from app.providers.registry_types import ProviderDeps, ProxyFactory, ProxyProviderBuild

ID_TOKEN_HEADER = "x-ms-token-aad-id-token"
ACCESS_TOKEN_HEADER = "x-ms-token-aad-access-token"


def validate_app_service_environment(environ: Mapping[str, str]) -> None:
    """Backstage's ``validateAppServiceConfiguration``.

    Raises:
        ValueError: saying which App Service setting is missing.
    """
    if environ.get("WEBSITE_SKU") is None:
        raise ValueError("Backstage is not running on Azure App Services (WEBSITE_SKU is not set)")
    if environ.get("WEBSITE_AUTH_ENABLED", "").lower() != "true":
        raise ValueError(
            "Azure App Services does not have authentication enabled (WEBSITE_AUTH_ENABLED)"
        )
    if environ.get("WEBSITE_AUTH_DEFAULT_PROVIDER", "").lower() != "azureactivedirectory":
        raise ValueError("Authentication provider is not Entra ID (WEBSITE_AUTH_DEFAULT_PROVIDER)")
    if environ.get("WEBSITE_AUTH_TOKEN_STORE", "").lower() != "true":
        raise ValueError("Token Store is not enabled (WEBSITE_AUTH_TOKEN_STORE)")


class AzureEasyAuthAuthenticator:
    def __init__(self, *, trusted_proxies: TrustedProxies) -> None:
        self.trusted_proxies = trusted_proxies

    async def authenticate(self, request: ProxyRequest) -> ProxyResult:
        self.trusted_proxies.check(request.client_host, headers_what="Easy Auth token headers")
        id_token = header(request, ID_TOKEN_HEADER)
        if not id_token:
            raise AuthenticationError(f"Missing {ID_TOKEN_HEADER} header")
        claims = decode_unverified(id_token, what=f"ID token in {ID_TOKEN_HEADER}")
        if claims.get("ver") != "2.0":
            raise AuthenticationError(f"The ID token in {ID_TOKEN_HEADER} is not version 2.0")
        access_token = header(request, ACCESS_TOKEN_HEADER) or None
        provider_info: dict[str, Any] = {}
        if access_token is not None:
            provider_info["accessToken"] = access_token
        oid = claims.get("oid")
        return ProxyResult(
            profile=ProfileInfo(
                email=non_empty_str(claims.get("email")),
                display_name=non_empty_str(claims.get("name")),
            ),
            provider_info=provider_info,
            sign_in_facts={"id": non_empty_str(oid), "claims": claims},
        )

    async def aclose(self) -> None:
        return None


# -- resolvers --------------------------------------------------------------------------


def id_matching_user_entity_annotation(options: Mapping[str, Any]) -> SignInResolver:
    """The ID token's ``oid`` against the ``graph.microsoft.com/user-id`` annotation."""
    validate_options(options, {})

    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        user_id = info.result.get("id")
        if not isinstance(user_id, str) or not user_id:
            raise AuthenticationError("User profile contained no id (no oid in the ID token)")
        return await ctx.sign_in_with_catalog_user(
            annotations={"graph.microsoft.com/user-id": user_id}
        )

    return resolve


RESOLVERS: dict[str, ResolverFactory] = {
    **COMMON_RESOLVERS,
    "idMatchingUserEntityAnnotation": id_matching_user_entity_annotation,
}


# -- config -----------------------------------------------------------------------------


def make_create(environ: Mapping[str, str] | None = None) -> ProxyFactory:
    """The factory, checking ``environ`` (``os.environ`` when None, read at startup)."""

    def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> ProxyProviderBuild:
        try:
            validate_app_service_environment(os.environ if environ is None else environ)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        settings = validate_model(HeaderTrustSettings, raw, path)
        authenticator = AzureEasyAuthAuthenticator(
            trusted_proxies=build_trusted_proxies(settings, path, "azureEasyAuth")
        )
        return ProxyProviderBuild(authenticator=authenticator, sign_in=settings.signIn)

    return create


create = make_create()
