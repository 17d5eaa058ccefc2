"""``gcpIap``: users signed in by Google Cloud's Identity-Aware Proxy.

IAP sends a signed JWT in ``x-goog-iap-jwt-assertion`` (or the header named by
``jwtHeader``). It is verified against IAP's public keys
(``https://www.gstatic.com/iap/verify/public_key-jwk``), ES256 only, ``aud`` must be
``audience``, ``iss`` must be ``https://cloud.google.com/iap``, ``exp``/``iat`` are checked;
``sub`` and ``email`` are required. ``providerInfo`` is ``{iapToken: <claims>}``.
Config (``auth.providers.gcpIap``): ``audience``, ``jwtHeader?``, ``signIn``.
(``plugins/auth-backend-module-gcp-iap-provider/src/authenticator.ts``, ``helpers.ts``)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2
from pydantic import Field

from app.config.validation import validate_model
from app.core.clock import Clock
from app.core.errors import AuthenticationError, BackstageError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.identity.resolvers import (
    AuthResolverContext,
    ResolverFactory,
    SignInResolver,
    validate_options,
)
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.providers.base import ProxyRequest, ProxyResult
from app.providers.jwt_verify import validate_claims, verify_jwt
from app.providers.proxy_trust import header
from app.providers.registry_types import ProviderDeps, ProxyProviderBuild
from app.providers.remote_keys import KEY_REFETCH_INTERVAL_SECONDS, OutboundHttp, RemoteJwks
from app.providers.settings import KeyFetchSettings, SignInSettings

DEFAULT_IAP_JWT_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_KEYS_URL = "https://www.gstatic.com/iap/verify/public_key-jwk"
ALGORITHMS = ("ES256",)


class GcpIapAuthenticator:
    def __init__(
        self,
        *,
        audience: str,
        clock: Clock,
        jwt_header: str = DEFAULT_IAP_JWT_HEADER,
        keys_url: str = IAP_KEYS_URL,
        transport: httpx2.AsyncBaseTransport | None = None,
        refetch_interval_seconds: float = KEY_REFETCH_INTERVAL_SECONDS,
        timeout_seconds: float = OUTBOUND_TIMEOUT_SECONDS,
    ) -> None:
        self.audience = audience
        self.jwt_header = jwt_header
        self._clock = clock
        self._http = OutboundHttp(transport, timeout_seconds=timeout_seconds)
        self.keys = RemoteJwks(
            url=keys_url,
            http=self._http,
            clock=clock,
            what="Google IAP public keys",
            refetch_interval_seconds=refetch_interval_seconds,
        )

    async def authenticate(self, request: ProxyRequest) -> ProxyResult:
        what = f"Google IAP JWT assertion ({self.jwt_header})"
        token = header(request, self.jwt_header)
        if not token:
            raise AuthenticationError(f"Missing Google IAP header: {self.jwt_header}")
        verified = await verify_jwt(
            token, what=what, algorithms=ALGORITHMS, key_for=self.keys.key_for
        )
        claims = verified.claims
        validate_claims(
            claims,
            what=what,
            now=self._clock.now(),
            issuer=IAP_ISSUER,
            audiences=[self.audience],
            required=("exp", "iat"),
        )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthenticationError("Google IAP token payload is missing subject claim")
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise AuthenticationError("Google IAP token payload is missing email claim")
        return ProxyResult(
            profile=ProfileInfo(email=email),
            provider_info={"iapToken": claims},
            sign_in_facts={"email": email, "sub": sub, "claims": claims},
        )

    async def aclose(self) -> None:
        await self._http.aclose()


# -- resolvers --------------------------------------------------------------------------


def email_matching_user_entity_annotation(options: Mapping[str, Any]) -> SignInResolver:
    """The IAP token's ``email`` against the ``google.com/email`` annotation."""
    validate_options(options, {})

    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        email = info.result.get("email")
        if not isinstance(email, str) or not email:
            raise BackstageError("Google IAP sign-in result is missing email")
        return await ctx.sign_in_with_catalog_user(annotations={"google.com/email": email})

    return resolve


def id_matching_user_entity_annotation(options: Mapping[str, Any]) -> SignInResolver:
    """The user id (``sub`` after ``accounts.google.com:``) against ``google.com/user-id``."""
    validate_options(options, {})

    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        sub = info.result.get("sub")
        if not isinstance(sub, str) or not sub:
            raise BackstageError("Google IAP sign-in result is missing the subject")
        user_id = sub.split(":", 1)[1] if ":" in sub else sub
        return await ctx.sign_in_with_catalog_user(annotations={"google.com/user-id": user_id})

    return resolve


# Backstage registers {...gcpIap, ...common}; the names do not overlap.
RESOLVERS: dict[str, ResolverFactory] = {
    "emailMatchingUserEntityAnnotation": email_matching_user_entity_annotation,
    "idMatchingUserEntityAnnotation": id_matching_user_entity_annotation,
}


# -- config -----------------------------------------------------------------------------


class GcpIapSettings(KeyFetchSettings):
    audience: str = Field(min_length=1)
    jwtHeader: str | None = Field(default=None, min_length=1)
    signIn: SignInSettings | None = None


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> ProxyProviderBuild:
    settings = validate_model(GcpIapSettings, raw, path)
    authenticator = GcpIapAuthenticator(
        audience=settings.audience,
        jwt_header=(settings.jwtHeader or DEFAULT_IAP_JWT_HEADER).lower(),
        clock=deps.clock,
        transport=deps.transport,
        timeout_seconds=settings.timeout_seconds,
    )
    return ProxyProviderBuild(authenticator=authenticator, sign_in=settings.signIn)
