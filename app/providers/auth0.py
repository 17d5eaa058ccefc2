"""``auth0``: an Auth0 tenant, addressed by its ``domain``.

Deltas from the OAuth2 base: endpoints under ``https://<domain>``; the authorize request
carries ``prompt`` (default ``consent``, ``auto`` omits it), ``audience``, ``connection``
(+ ``connection_scope``), ``organization`` (config, or ``/start?organization=`` when the
two agree), ``invitation``, ``screen_hint`` and ``login_hint`` from ``/start``; every
``?error=`` is a rejection; the profile is ``/userinfo``'s, kept a minute per ID token
``sub`` (Auth0 rate-limits userinfo); logout hands back Auth0's ``/v2/logout`` URL.
(``plugins/auth-backend-module-auth0-provider/src/authenticator.ts``, ``strategy.ts``;
passport-auth0 ``lib/index.js``, ``lib/Profile.js``)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx2
from pydantic import field_validator

from app.config.validation import validate_model
from app.core.clock import Clock
from app.core.errors import InputError
from app.identity.types import ProfileInfo
from app.providers.base import LogoutInput, LogoutResult, OAuthSession, StartInput
from app.providers.oauth2_base import (
    ClientCredentials,
    OAuth2Authenticator,
    OAuth2ClientOptions,
    OAuth2Endpoints,
    decode_unverified_claims,
)
from app.providers.passport import (
    ServiceSettings,
    build_service_provider,
    facts,
    text,
    transform_profile,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps

DEFAULT_PROMPT = "consent"
# /start query parameters passed through to the authorize request (Backstage's Auth0Strategy).
START_PARAMS = ("organization", "invitation", "screen_hint", "login_hint")
PROFILE_CACHE_SECONDS = 60.0
ORGANIZATION_MISMATCH = (
    "Organization mismatch. The organization provided in the request does not match the "
    "organization configured in the strategy."
)


def auth0_endpoints(domain: str) -> OAuth2Endpoints:
    base = f"https://{domain}"
    return OAuth2Endpoints(f"{base}/authorize", f"{base}/oauth/token", f"{base}/userinfo")


class Auth0Authenticator(OAuth2Authenticator):
    def __init__(
        self,
        *,
        credentials: ClientCredentials,
        domain: str,
        clock: Clock,
        endpoints: OAuth2Endpoints | None = None,
        additional_scopes: tuple[str, ...] = (),
        transport: httpx2.AsyncBaseTransport | None = None,
        extra_authorize_params: Mapping[str, str] | None = None,
        organization: str | None = None,
        federated_logout: bool = False,
    ) -> None:
        super().__init__(
            credentials=credentials,
            endpoints=endpoints or auth0_endpoints(domain),
            additional_scopes=additional_scopes,
            transport=transport,
            extra_authorize_params=extra_authorize_params,
        )
        self.domain = domain
        self.organization = organization
        self.federated_logout = federated_logout
        self._clock = clock
        self._profiles: dict[str, tuple[float, ProfileInfo, dict[str, Any]]] = {}

    def authorize_params(self, request: StartInput) -> dict[str, str]:
        # Auth0Strategy adds the organization and the /start pass-through parameters.
        params = dict(self.extra_authorize_params)
        requested = request.extra_params.get("organization")
        # A /start parameter cannot take the user to another organization than configured.
        if requested and self.organization and requested != self.organization:
            raise InputError(ORGANIZATION_MISMATCH)
        if requested or self.organization:
            params["organization"] = requested or self.organization or ""
        for key in ("invitation", "screen_hint", "login_hint"):
            if request.extra_params.get(key):
                params[key] = request.extra_params[key]
        return params

    def rejected_message(self, error: str, description: str | None) -> str:
        # Backstage's Auth0Strategy fails every ?error= callback as a rejection.
        return f"Authentication rejected, {description or error}"

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        # Auth0 rate-limits /userinfo: one fetch per user (ID token sub) per minute.
        sub = text(decode_unverified_claims(session.id_token).get("sub"))
        now = self._clock.now()
        cached = self._profiles.get(sub) if sub else None
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        userinfo = await self.fetch_profile_json(session.access_token)
        user_id = text(userinfo.get("user_id")) or text(userinfo.get("sub"))
        profile = transform_profile(
            email=text(userinfo.get("email")),
            display_name=text(userinfo.get("name")) or user_id,
            picture=text(userinfo.get("picture")),
            id_token=session.id_token,
        )
        if userinfo.get("email_verified") is False:
            # An address Auth0 says is unverified must not match a catalog user's.
            profile = dataclasses.replace(profile, email=None)
        found = (profile, facts(user_id=user_id, claims=userinfo))
        if sub:
            self._profiles = {k: v for k, v in self._profiles.items() if v[0] > now}
            self._profiles[sub] = (now + PROFILE_CACHE_SECONDS, *found)
        return found

    async def logout(self, request: LogoutInput) -> LogoutResult:
        # Auth0 ends its own session at /v2/logout, then returns to the app's origin.
        params = {"federated": ""} if self.federated_logout else {}
        params["client_id"] = self.credentials.client_id
        if request.app_origin:
            params["returnTo"] = request.app_origin
        return LogoutResult(logout_url=f"https://{self.domain}/v2/logout?{urlencode(params)}")


_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")


def bare_host(value: str) -> str:
    """A host name (and port): Backstage builds ``https://<domain>/...`` from it."""
    if not _HOST.match(value):
        raise ValueError("must be a host name such as 'example.eu.auth0.com', not a URL")
    return value


class Auth0Settings(ServiceSettings):
    domain: str
    audience: str | None = None
    connection: str | None = None
    connectionScope: str | None = None
    prompt: str = DEFAULT_PROMPT
    organization: str | None = None
    federatedLogout: bool = False

    _domain = field_validator("domain")(bare_host)


def authorize_params(settings: Auth0Settings) -> dict[str, str]:
    """The configured authorize parameters, as passport-auth0 emits them."""
    # passport-auth0 copies options it does not know through: Backstage's accessType too.
    params = {"accessType": "offline"}
    if settings.connection:
        params["connection"] = settings.connection
        # passport-auth0 sends connection_scope only together with a connection.
        if settings.connectionScope:
            params["connection_scope"] = settings.connectionScope
    if settings.audience:
        params["audience"] = settings.audience
    if settings.prompt != "auto":
        params["prompt"] = settings.prompt
    return params


def describe_sign_out(env: Mapping[str, Any]) -> str:
    """check-config's words: Backstage's auth0 sign-out always goes through /v2/logout."""
    if env.get("federatedLogout") is True:
        ends = "the Auth0 session and the upstream identity provider's"
        return f"federatedLogout: true (the browser goes to Auth0's /v2/logout: ends {ends})"
    return "federatedLogout: false (the browser goes to Auth0's /v2/logout: ends the Auth0 session)"


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(Auth0Settings, raw, path)

    def make(options: OAuth2ClientOptions) -> Auth0Authenticator:
        return Auth0Authenticator(
            **options.constructor_args(),
            domain=settings.domain,
            clock=deps.clock,
            organization=settings.organization,
            federated_logout=settings.federatedLogout,
        )

    return build_service_provider(
        make,
        settings,
        auth0_endpoints(settings.domain),
        deps,
        extra_authorize_params=authorize_params(settings),
    )
