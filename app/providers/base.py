"""The contracts between the flow handlers and the providers.

An OAuth provider implements ``OAuthAuthenticator`` (Backstage's ``OAuthAuthenticator``
in ``plugins/auth-node/src/oauth/types.ts``); a proxy provider (guest, ALB, IAP, ...)
implements ``ProxyAuthenticator``. Inputs and outputs are plain dataclasses: raw token
responses and IdP JSON never travel past the provider.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.identity.types import ProfileInfo
from app.oauth.flow_secrets import FlowSecrets


@dataclass(frozen=True)
class StartInput:
    state: str  # encoded OAuth state
    scope: str
    callback_url: str
    secrets: FlowSecrets
    # Provider-specific /start query parameters the spec declares (auth0's organization, ...).
    extra_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StartResult:
    url: str
    status: int = 302


@dataclass(frozen=True)
class AuthenticateInput:
    # What the IdP sent to the callback (query, or form for response_mode=form_post).
    params: Mapping[str, str]
    callback_url: str
    secrets: FlowSecrets


@dataclass(frozen=True)
class OAuthSession:
    access_token: str
    token_type: str
    scope: str
    id_token: str | None = None
    expires_in_seconds: int | None = None
    refresh_token: str | None = None

    def provider_info(self) -> dict[str, Any]:
        """``providerInfo`` in Backstage's key order; absent values are omitted."""
        out: dict[str, Any] = {}
        if self.id_token is not None:
            out["idToken"] = self.id_token
        out["accessToken"] = self.access_token
        out["scope"] = self.scope
        if self.expires_in_seconds is not None:
            out["expiresInSeconds"] = self.expires_in_seconds
        return out


@dataclass(frozen=True)
class AuthResult:
    session: OAuthSession
    profile: ProfileInfo
    # Provider-specific facts for sign-in resolvers (username, user id, ID token claims).
    sign_in_facts: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """For sharing a refresh result between instances (sealed, never logged)."""
        return {
            "session": dataclasses.asdict(self.session),
            "profile": dataclasses.asdict(self.profile),
            "facts": dict(self.sign_in_facts),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthResult:
        return cls(
            session=OAuthSession(**data["session"]),
            profile=ProfileInfo(**data["profile"]),
            sign_in_facts=data["facts"],
        )


@dataclass(frozen=True)
class RefreshInput:
    refresh_token: str
    scope: str
    # Persisting providers only: is every requested scope already granted?
    scope_already_granted: bool | None = None


@dataclass(frozen=True)
class LogoutInput:
    refresh_token: str | None
    app_origin: str | None = None
    # The last ID token of the session, for RP-initiated logout (id_token_hint).
    id_token: str | None = None
    # Configured and allowed (checked at start-up).
    post_logout_redirect_uri: str | None = None


@dataclass(frozen=True)
class LogoutResult:
    logout_url: str | None = None


class OAuthAuthenticator(Protocol):
    """One provider, one environment. Errors are ``app.core.errors.BackstageError`` subclasses
    or plain exceptions whose message the user may see."""

    # Providers that keep granted scopes in a cookie and the state (github, oidc, ...).
    persist_scopes: bool
    required_scopes: tuple[str, ...]
    additional_scopes: tuple[str, ...]

    def transform_scopes(
        self,
        requested: list[str],
        granted: list[str],
        required: tuple[str, ...],
        additional: tuple[str, ...],
    ) -> list[str]:
        """The scope to ask for; Backstage's default is the ordered union of all four."""
        ...

    async def start(self, request: StartInput) -> StartResult: ...

    async def authenticate(self, request: AuthenticateInput) -> AuthResult: ...

    async def refresh(self, request: RefreshInput) -> AuthResult: ...

    async def logout(self, request: LogoutInput) -> LogoutResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ProxyRequest:
    """What a proxy provider may read from the incoming request (never the request)."""

    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    client_host: str | None


@dataclass(frozen=True)
class ProxyResult:
    profile: ProfileInfo
    provider_info: Mapping[str, Any] | None
    sign_in_facts: Mapping[str, Any] = field(default_factory=dict)


class ProxyAuthenticator(Protocol):
    async def authenticate(self, request: ProxyRequest) -> ProxyResult: ...

    async def aclose(self) -> None: ...
