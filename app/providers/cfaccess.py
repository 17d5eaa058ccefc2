"""``cfaccess``: users (and service tokens) signed in by Cloudflare Access.

Access sends its application token in the ``cf-access-jwt-assertion`` header (or
``jwtHeaderName``) and the ``CF_Authorization`` cookie (or ``authorizationCookieName``);
the header wins. The token is verified against the team's keys
(``https://<teamName>.cloudflareaccess.com/cdn-cgi/access/certs``), RS256 only, ``iss``
must be ``https://<teamName>.cloudflareaccess.com``, ``exp`` is checked, and ``aud`` must
contain one of ``audience`` when it is configured. A user's identity comes from
``/cdn-cgi/access/get-identity`` (called with the token as header and cookie); a token
without ``sub`` is a service token, accepted only when its ``common_name`` is one of
``serviceTokens[].token`` (it signs in as that entry's ``subject`` email).
``providerInfo`` is ``{claims, cfIdentity, expiresInSeconds, token}``.
Config (``auth.providers.cfaccess``): ``teamName``, ``audience?`` (string or list: the
Access application's AUD tag), ``jwtHeaderName?``, ``authorizationCookieName?``,
``serviceTokens?``, ``signIn``.
(``plugins/auth-backend-module-cloudflare-access-provider/src/helpers.ts``)

Deltas from Backstage: ``audience`` is ours (Backstage checks no audience, so a token of
any Access application of the team is accepted; without ``audience`` we do the same and
warn at startup); the identity is not cached; a sub-less token is never matched against
service tokens by a user's ``sub``. Resolvers: Backstage registers
``{...cloudflareAccess, ...common}``, so the common ``emailMatchingUserEntityProfileEmail``
shadows the module's variant; the common set is therefore exactly what is available.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2
from pydantic import BaseModel, ConfigDict, Field

from app.config.validation import validate_model
from app.core.clock import Clock
from app.core.errors import AuthenticationError, ServiceUnavailableError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.core.values import non_empty_str
from app.identity.resolvers import ResolverFactory
from app.identity.types import ProfileInfo
from app.providers.base import ProxyRequest, ProxyResult
from app.providers.jwt_verify import validate_claims, verify_jwt
from app.providers.proxy_trust import cookie, header
from app.providers.registry_types import ProviderDeps, ProxyProviderBuild
from app.providers.remote_keys import (
    KEY_REFETCH_INTERVAL_SECONDS,
    KeyFetchError,
    OutboundHttp,
    RemoteJwks,
)
from app.providers.settings import KeyFetchSettings, SignInSettings

log = logging.getLogger(__name__)

CF_JWT_HEADER = "cf-access-jwt-assertion"
COOKIE_AUTH_NAME = "CF_Authorization"
ALGORITHMS = ("RS256",)
TEAM_DOMAIN = "https://{team}.cloudflareaccess.com"
CERTS_PATH = "/cdn-cgi/access/certs"
IDENTITY_PATH = "/cdn-cgi/access/get-identity"
_TEAM_NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"


def team_domain(team_name: str) -> str:
    return TEAM_DOMAIN.format(team=team_name)


class ServiceToken(BaseModel):
    model_config = ConfigDict(frozen=True)

    token: str = Field(min_length=1)  # the service token's Client ID (common_name)
    subject: str = Field(min_length=1)  # the email it signs in as


class CloudflareAccessAuthenticator:
    def __init__(
        self,
        *,
        team_name: str,
        clock: Clock,
        audiences: tuple[str, ...] | None = None,
        service_tokens: tuple[ServiceToken, ...] = (),
        jwt_header_name: str = CF_JWT_HEADER,
        authorization_cookie_name: str = COOKIE_AUTH_NAME,
        domain: str | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        refetch_interval_seconds: float = KEY_REFETCH_INTERVAL_SECONDS,
        timeout_seconds: float = OUTBOUND_TIMEOUT_SECONDS,
    ) -> None:
        self.issuer = team_domain(team_name)
        # ``domain`` moves the endpoints (tests); the issuer stays the team's.
        base = (domain or self.issuer).rstrip("/")
        self.identity_url = base + IDENTITY_PATH
        self.audiences = audiences
        self.service_tokens = service_tokens
        self.jwt_header_name = jwt_header_name
        self.authorization_cookie_name = authorization_cookie_name
        self._clock = clock
        self._http = OutboundHttp(transport, timeout_seconds=timeout_seconds)
        self.keys = RemoteJwks(
            url=base + CERTS_PATH,
            http=self._http,
            clock=clock,
            what="Cloudflare Access signing keys",
            refetch_interval_seconds=refetch_interval_seconds,
        )

    async def authenticate(self, request: ProxyRequest) -> ProxyResult:
        token = header(request, self.jwt_header_name) or cookie(
            request, self.authorization_cookie_name
        )
        if not token:
            raise AuthenticationError(
                f"Missing {self.jwt_header_name} and {self.authorization_cookie_name} "
                "from Cloudflare Access"
            )
        what = "Cloudflare Access JWT"
        verified = await verify_jwt(
            token, what=what, algorithms=ALGORITHMS, key_for=self.keys.key_for
        )
        claims = verified.claims
        validate_claims(
            claims,
            what=what,
            now=self._clock.now(),
            issuer=self.issuer,
            audiences=list(self.audiences) if self.audiences else None,
        )
        sub = claims.get("sub")
        if isinstance(sub, str) and sub:
            identity = await self._identity(token)
        else:
            identity = self._service_token_identity(claims)
        exp, iat = claims.get("exp"), claims.get("iat")
        expires_in: int | None = None
        if isinstance(exp, int | float) and isinstance(iat, int | float):
            expires_in = int(exp - iat)
        result: dict[str, Any] = {"claims": claims, "cfIdentity": identity}
        if expires_in is not None:
            result["expiresInSeconds"] = expires_in
        result["token"] = token
        return ProxyResult(
            profile=ProfileInfo(
                email=non_empty_str(identity.get("email")),
                display_name=non_empty_str(identity.get("name")),
            ),
            provider_info=result,
            sign_in_facts={"claims": claims, "cfIdentity": identity},
        )

    def _service_token_identity(self, claims: dict[str, Any]) -> dict[str, Any]:
        common_name = claims.get("common_name")
        if not isinstance(common_name, str) or not common_name:
            raise AuthenticationError("Missing both sub and common_name from Cloudflare Access JWT")
        for service_token in self.service_tokens:
            if service_token.token == common_name:
                return {
                    "id": common_name,
                    "name": "Bot",
                    "email": service_token.subject,
                    "groups": [],
                }
        raise AuthenticationError(f"{common_name} is not a permitted Service Token.")

    async def _identity(self, token: str) -> dict[str, Any]:
        failure = "Failed to populate access identity information"
        try:
            response = await self._http.get(
                self.identity_url,
                what="Cloudflare Access get-identity",
                headers={
                    self.jwt_header_name: token,
                    "cookie": f"{self.authorization_cookie_name}={token}",
                },
            )
        except KeyFetchError as exc:
            if exc.missing:
                # Access refused the token it just signed: revoked or logged out.
                raise AuthenticationError(f"{failure}, {exc}") from exc
            raise ServiceUnavailableError(f"{failure}, {exc}") from exc
        try:
            identity = response.json()
        except ValueError as exc:
            raise ServiceUnavailableError(f"{failure}, the identity is not JSON") from exc
        if not isinstance(identity, dict):
            raise ServiceUnavailableError(f"{failure}, the identity is not a JSON object")
        return identity

    async def aclose(self) -> None:
        await self._http.aclose()


# Backstage's common resolvers only (the registry adds them to every provider's).
RESOLVERS: dict[str, ResolverFactory] = {}


# -- config -----------------------------------------------------------------------------


class CloudflareAccessSettings(KeyFetchSettings):
    teamName: str = Field(pattern=_TEAM_NAME)
    audience: str | list[str] | None = None
    jwtHeaderName: str | None = Field(default=None, min_length=1)
    authorizationCookieName: str | None = Field(default=None, min_length=1)
    serviceTokens: list[ServiceToken] = Field(default_factory=list)
    signIn: SignInSettings | None = None

    @property
    def audiences(self) -> tuple[str, ...] | None:
        if self.audience is None:
            return None
        values = [self.audience] if isinstance(self.audience, str) else self.audience
        return tuple(v for v in values if v) or None


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> ProxyProviderBuild:
    settings = validate_model(CloudflareAccessSettings, raw, path)
    if settings.audiences is None:
        log.warning(
            "%s.audience is not set: tokens of every Access application of team '%s' are "
            "accepted; set it to this application's AUD tag",
            path,
            settings.teamName,
        )
    authenticator = CloudflareAccessAuthenticator(
        team_name=settings.teamName,
        audiences=settings.audiences,
        service_tokens=tuple(settings.serviceTokens),
        jwt_header_name=(settings.jwtHeaderName or CF_JWT_HEADER).lower(),
        authorization_cookie_name=settings.authorizationCookieName or COOKIE_AUTH_NAME,
        clock=deps.clock,
        transport=deps.transport,
        timeout_seconds=settings.timeout_seconds,
    )
    return ProxyProviderBuild(authenticator=authenticator, sign_in=settings.signIn)
