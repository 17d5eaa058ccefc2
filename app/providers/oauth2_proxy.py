"""``oauth2Proxy``: users signed in by OAuth2 Proxy, which forwards who they are in headers.

Nothing here is signed for us: ``X-OAUTH2-PROXY-ID-TOKEN: Bearer <jwt>`` is decoded, not
verified (as Backstage does), and ``x-forwarded-email``, ``x-forwarded-preferred-username``
and ``x-forwarded-user`` are taken as they come. Backstage trusts them from anyone; here
they are trusted only when the request's direct peer is one of ``trustedProxies``
(addresses or CIDRs: the OAuth2 Proxy instances). Without that setting every request is
refused with a 401 that names it.

Profile: ``email`` = ``x-forwarded-email``, ``displayName`` =
``x-forwarded-preferred-username`` or ``x-forwarded-user``; ``providerInfo`` is
``{accessToken: <the ID token, or "">}``.
Config (``auth.providers.oauth2Proxy``): ``trustedProxies`` (ours), ``signIn``.
(``plugins/auth-backend-module-oauth2-proxy-provider/src/authenticator.ts``, ``resolvers.ts``)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.config.validation import validate_model
from app.core.errors import AuthenticationError
from app.identity.entity_ref import DEFAULT_NAMESPACE, stringify_entity_ref
from app.identity.resolvers import (
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
from app.providers.registry_types import ProviderDeps, ProxyProviderBuild

OAUTH2_PROXY_JWT_HEADER = "x-oauth2-proxy-id-token"
FORWARDED_EMAIL = "x-forwarded-email"
FORWARDED_PREFERRED_USERNAME = "x-forwarded-preferred-username"
FORWARDED_USER = "x-forwarded-user"
_BEARER = re.compile(r"^Bearer[ ]+(\S+)$", re.IGNORECASE)


class OAuth2ProxyAuthenticator:
    def __init__(self, *, trusted_proxies: TrustedProxies) -> None:
        self.trusted_proxies = trusted_proxies

    async def authenticate(self, request: ProxyRequest) -> ProxyResult:
        self.trusted_proxies.check(request.client_host, headers_what="OAuth2 Proxy headers")
        claims: dict[str, Any] = {}
        id_token = ""
        auth_header = header(request, OAUTH2_PROXY_JWT_HEADER)
        if auth_header:
            match = _BEARER.match(auth_header)
            if match is not None:
                id_token = match.group(1)
                try:
                    claims = decode_unverified(
                        id_token, what=f"ID token in {OAUTH2_PROXY_JWT_HEADER}"
                    )
                except AuthenticationError as exc:
                    raise AuthenticationError("Authentication failed", exc) from exc
        email = header(request, FORWARDED_EMAIL) or None
        preferred = header(request, FORWARDED_PREFERRED_USERNAME) or None
        user = header(request, FORWARDED_USER) or None
        return ProxyResult(
            profile=ProfileInfo(email=email, display_name=preferred or user),
            provider_info={"accessToken": id_token},
            sign_in_facts={
                "forwardedUser": user,
                "forwardedPreferredUsername": preferred,
                "forwardedEmail": email,
                "claims": claims,
            },
        )

    async def aclose(self) -> None:
        return None


# -- resolvers --------------------------------------------------------------------------

_DANGEROUS_FLAG = {
    "dangerouslyAllowSignInWithoutUserInCatalog": (
        lambda value: isinstance(value, bool),
        "a boolean",
    ),
}


def _name_resolver(fact: str, missing: str) -> ResolverFactory:
    def factory(options: Mapping[str, Any]) -> SignInResolver:
        validate_options(options, _DANGEROUS_FLAG)
        dangerous = bool(options.get("dangerouslyAllowSignInWithoutUserInCatalog", False))

        async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
            name = info.result.get(fact)
            if not isinstance(name, str) or not name:
                # Backstage throws a plain Error (500); no identity is a 401.
                raise AuthenticationError(missing)
            return await ctx.sign_in_with_catalog_user(
                # Built, not parsed: the header value is the entity name, whole.
                entity_ref=stringify_entity_ref("user", DEFAULT_NAMESPACE, name),
                dangerously_allow_sign_in_without_user_in_catalog=dangerous,
                fallback_name=name,
            )

        return resolve

    return factory


forwarded_user_matching_user_entity_name = _name_resolver(
    "forwardedUser", f"Request did not contain a user (no {FORWARDED_USER} header)"
)
forwarded_preferred_username_matching_user_entity_name = _name_resolver(
    "forwardedPreferredUsername",
    f"Request did not contain a preferred username (no {FORWARDED_PREFERRED_USERNAME} header)",
)

RESOLVERS: dict[str, ResolverFactory] = {
    "forwardedUserMatchingUserEntityName": forwarded_user_matching_user_entity_name,
    "forwardedPreferredUsernameMatchingUserEntityName": (
        forwarded_preferred_username_matching_user_entity_name
    ),
}


# -- config -----------------------------------------------------------------------------


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> ProxyProviderBuild:
    settings = validate_model(HeaderTrustSettings, raw, path)
    authenticator = OAuth2ProxyAuthenticator(
        trusted_proxies=build_trusted_proxies(settings, path, "oauth2Proxy")
    )
    return ProxyProviderBuild(authenticator=authenticator, sign_in=settings.signIn)
