"""``awsalb``: users signed in by an AWS Application Load Balancer's OIDC authentication.

The ALB forwards ``x-amzn-oidc-data`` (an ES256 JWT it signs; base64url segments may
carry ``=`` padding) and ``x-amzn-oidc-accesstoken``. The JWT is verified with the
regional ALB public key fetched by ``kid`` (PEM, from
``https://public-keys.auth.elb.<region>.amazonaws.com/<kid>``; GovCloud regions use the
S3 location), ``iss`` must equal ``issuer``, the header's ``signer`` must equal ``signer``
(the ALB's ARN) when configured, ``exp`` is checked, and ``email`` is required.
Config (``auth.providers.awsalb``): ``issuer``, ``region``, ``signer?``, ``signIn``.
(``plugins/auth-backend-module-aws-alb-provider/src/authenticator.ts``)

Deltas from Backstage, which wraps every failure in a plain 500 ``Error``: failures are
``401 AuthenticationError`` with a message that says what was wrong; a fetch failure of
the key endpoint is a 503. ``providerInfo.expiresInSeconds`` is the token's remaining
lifetime (Backstage puts the absolute ``exp`` there). The access token is not decoded to
fill the profile (it is not signed by the ALB).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from pydantic import Field

from app.config.validation import validate_model
from app.core.clock import Clock
from app.core.errors import AuthenticationError, BackstageError, ServiceUnavailableError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.core.values import non_empty_str
from app.identity.resolvers import (
    AuthResolverContext,
    ResolverFactory,
    SignInResolver,
    validate_options,
)
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.providers.base import ProxyRequest, ProxyResult
from app.providers.jwt_verify import parse_compact, validate_claims, verify_jwt
from app.providers.proxy_trust import header
from app.providers.registry_types import ProviderDeps, ProxyProviderBuild
from app.providers.remote_keys import (
    KEY_CACHE_TTL_SECONDS,
    KEY_REFETCH_INTERVAL_SECONDS,
    FetchLimiter,
    KeyFetchError,
    OutboundHttp,
)
from app.providers.settings import KeyFetchSettings, SignInSettings

log = logging.getLogger(__name__)

ALB_JWT_HEADER = "x-amzn-oidc-data"
ALB_ACCESS_TOKEN_HEADER = "x-amzn-oidc-accesstoken"
ALGORITHMS = ("ES256",)
# Key fetches of all kids together, per refetch interval (each kid: at most one).
KEY_FETCH_BURST = 10
_WHAT = f"ALB OIDC data token ({ALB_JWT_HEADER})"
# ALB key ids are UUIDs; anything else never reaches the key endpoint's URL.
_KID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def public_key_endpoint(region: str) -> str:
    """Where the ALB's public keys are published, per region (``<endpoint>/<kid>``)."""
    if region.startswith("us-gov"):
        return f"https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}"
    return f"https://public-keys.auth.elb.{region}.amazonaws.com"


class AlbPublicKeys:
    """PEM keys by ``kid``, cached ``ttl_seconds``.

    Made-up kids must neither flood AWS nor lock real users out (a restart leaves every
    real kid uncached): each kid is fetched at most once per ``refetch_interval_seconds``
    (a miss is remembered that long), fetches of different kids run side by side and
    never delay a cached one, and all fetches together stay within ``burst`` per
    interval. A flood of more distinct kids than that still delays new real kids for an
    interval: ``signer`` (checked before any fetch) and letting only the ALB reach the
    server keep forged tokens out.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        http: OutboundHttp,
        clock: Clock,
        ttl_seconds: float = KEY_CACHE_TTL_SECONDS,
        refetch_interval_seconds: float = KEY_REFETCH_INTERVAL_SECONDS,
        burst: int = KEY_FETCH_BURST,
        max_entries: int = 64,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._http = http
        self._clock = clock
        self._ttl = ttl_seconds
        self._interval = refetch_interval_seconds
        self._limiter = FetchLimiter(clock, interval_seconds=refetch_interval_seconds, burst=burst)
        self._max_entries = max_entries
        self._cache: dict[str, tuple[ECKey, float]] = {}
        # kid -> when AWS last said it has no such key, or when its fetch was last tried.
        self._tried: dict[str, float] = {}
        self._in_flight: dict[str, asyncio.Task[ECKey | None]] = {}
        self.fetch_count = 0

    async def key_for(self, kid: str) -> ECKey | None:
        """The key for ``kid``; None when AWS has none or lookups are throttled.

        Raises:
            ServiceUnavailableError: when the key endpoint fails (network, 5xx, garbage).
        """
        if not _KID.match(kid):
            return None
        now = self._clock.now()
        cached = self._cache.get(kid)
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        task = self._in_flight.get(kid)
        if task is None:
            tried = self._tried.get(kid)
            if tried is not None and now - tried < self._interval:
                # A stale key is still the key AWS published under this id.
                return cached[0] if cached is not None else None
            if not self._limiter.try_acquire():
                return cached[0] if cached is not None else None
            self._remember(self._tried, kid, now)
            task = asyncio.ensure_future(self._refresh(kid, cached, now))
            self._in_flight[kid] = task
            task.add_done_callback(lambda _: self._in_flight.pop(kid, None))
        # Shielded: one caller giving up does not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    async def _refresh(
        self, kid: str, cached: tuple[ECKey, float] | None, now: float
    ) -> ECKey | None:
        try:
            key = await self._fetch(kid)
        except ServiceUnavailableError:
            if cached is not None:
                log.warning("ALB key endpoint failed; using the cached key for %s", kid)
                return cached[0]
            raise
        if key is None:
            self._cache.pop(kid, None)
            return None
        self._remember(self._cache, kid, (key, now))
        return key

    def _remember(self, table: dict[str, Any], kid: str, value: Any) -> None:
        if kid not in table and len(table) >= self._max_entries:
            # Insertion order: the oldest entry goes.
            del table[next(iter(table))]
        table[kid] = value

    async def _fetch(self, kid: str) -> ECKey | None:
        self.fetch_count += 1
        url = f"{self.endpoint}/{quote(kid, safe='')}"
        try:
            response = await self._http.get(url, what="Fetching the ALB public key")
        except KeyFetchError as exc:
            if exc.missing:
                return None
            raise ServiceUnavailableError(str(exc)) from exc
        try:
            key = ECKey.import_key(response.text)
        except (JoseError, ValueError, TypeError) as exc:
            raise ServiceUnavailableError(
                f"The ALB public key at {url} is not a PEM EC public key"
            ) from exc
        if key.curve_name != "P-256" or key.is_private:
            raise ServiceUnavailableError(f"The ALB public key at {url} is not a P-256 public key")
        return key


class AwsAlbAuthenticator:
    def __init__(
        self,
        *,
        issuer: str,
        region: str,
        clock: Clock,
        signer: str | None = None,
        key_endpoint: str | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        refetch_interval_seconds: float = KEY_REFETCH_INTERVAL_SECONDS,
        timeout_seconds: float = OUTBOUND_TIMEOUT_SECONDS,
    ) -> None:
        self.issuer = issuer
        self.signer = signer
        self._clock = clock
        self._http = OutboundHttp(transport, timeout_seconds=timeout_seconds)
        self.keys = AlbPublicKeys(
            endpoint=key_endpoint or public_key_endpoint(region),
            http=self._http,
            clock=clock,
            refetch_interval_seconds=refetch_interval_seconds,
        )

    async def authenticate(self, request: ProxyRequest) -> ProxyResult:
        token = header(request, ALB_JWT_HEADER)
        if not token:
            raise AuthenticationError(f"Missing ALB OIDC header: {ALB_JWT_HEADER}")
        access_token = header(request, ALB_ACCESS_TOKEN_HEADER)
        if not access_token:
            raise AuthenticationError(f"Missing ALB OIDC header: {ALB_ACCESS_TOKEN_HEADER}")
        if self.signer is not None:
            # Before any key fetch: a token of another ALB never reaches AWS's key endpoint.
            unverified = parse_compact(token, what=_WHAT, allow_padding=True)
            self._check_signer(unverified.header)
        verified = await verify_jwt(
            token, what=_WHAT, algorithms=ALGORITHMS, key_for=self.keys.key_for, allow_padding=True
        )
        now = self._clock.now()
        claims = verified.claims
        validate_claims(claims, what=_WHAT, now=now, issuer=self.issuer)
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise AuthenticationError(f"The {_WHAT} has no email claim")
        sub = claims.get("sub")
        name = claims.get("name")
        picture = claims.get("picture")
        display_name = non_empty_str(name) or email.split("@", 1)[0] or non_empty_str(sub)
        profile = ProfileInfo(
            email=email, display_name=display_name, picture=non_empty_str(picture)
        )
        remaining = max(0, int(claims["exp"] - now))
        return ProxyResult(
            profile=profile,
            provider_info={"accessToken": access_token, "expiresInSeconds": remaining},
            sign_in_facts={"email": email, "sub": non_empty_str(sub), "claims": claims},
        )

    def _check_signer(self, token_header: Mapping[str, Any]) -> None:
        if token_header.get("signer") != self.signer:
            raise AuthenticationError(
                f"The {_WHAT} was signed by {token_header.get('signer')!r}, "
                "not by the configured ALB (signer)"
            )

    async def aclose(self) -> None:
        await self._http.aclose()


# -- resolvers --------------------------------------------------------------------------


def email_matching_user_entity_profile_email(options: Mapping[str, Any]) -> SignInResolver:
    """awsalb's variant: the token's ``email`` against ``spec.profile.email``, as is (no
    plus-addressing retry, no options)."""
    validate_options(options, {})

    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        email = info.result.get("email")
        if not isinstance(email, str) or not email:
            raise BackstageError("Login failed, user profile does not contain an email")
        return await ctx.sign_in_with_catalog_user(email=email)

    return resolve


# Backstage registers {...common, ...awsAlb}: the provider's variant wins.
RESOLVERS: dict[str, ResolverFactory] = {
    "emailMatchingUserEntityProfileEmail": email_matching_user_entity_profile_email,
}


# -- config -----------------------------------------------------------------------------


class AwsAlbSettings(KeyFetchSettings):
    issuer: str = Field(min_length=1)
    region: str = Field(min_length=1, pattern=_REGION.pattern)
    signer: str | None = Field(default=None, min_length=1)
    signIn: SignInSettings | None = None


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> ProxyProviderBuild:
    settings = validate_model(AwsAlbSettings, raw, path)
    if settings.signer is None:
        log.warning(
            "%s.signer is not set: tokens of any ALB whose keys AWS publishes are accepted "
            "when their issuer matches; set it to your load balancer's ARN",
            path,
        )
    authenticator = AwsAlbAuthenticator(
        issuer=settings.issuer,
        region=settings.region,
        signer=settings.signer,
        clock=deps.clock,
        transport=deps.transport,
        timeout_seconds=settings.timeout_seconds,
    )
    return ProxyProviderBuild(authenticator=authenticator, sign_in=settings.signIn)
