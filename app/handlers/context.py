"""What handlers are given: shared services and one runtime per mounted provider."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from app.authz.callers import ServiceCallers
from app.authz.plugin_callers import PluginCallers
from app.authz.service import AuthorizationServer
from app.config.settings import Settings
from app.core.clock import Clock
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.identity.catalog import Catalog, InMemoryCatalog
from app.identity.plugin_tokens import PluginTokenIssuer
from app.identity.resolvers import AuthResolverContext, SignInResolver
from app.identity.tokens import TokenIssuer
from app.identity.user_info import UserInfoStore
from app.oauth.cookies import OAuthCookieManager
from app.oauth.origins import Origin, OriginFilter
from app.oauth.sessions import SessionCodec
from app.observability.audit import Audit
from app.observability.idp_failures import IdentityProviderFailures
from app.observability.metrics import Metrics
from app.providers.base import OAuthAuthenticator, ProxyAuthenticator
from app.refresh.coalescing import RefreshCoordinator
from app.sessions.records import ExpiringKeys


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    development: bool
    origin_filter: OriginFilter
    token_issuer: TokenIssuer
    user_info: UserInfoStore
    resolver_context: AuthResolverContext
    # Derives per-sign-in secrets (PKCE verifier, OIDC nonce); from auth.session.secret.
    flow_key: bytes
    sessions: SessionCodec
    refresh_coordinator: RefreshCoordinator
    # Session ids ended by logout, until each session's own expiry.
    ended_sessions: ExpiringKeys
    # State nonces whose callback ran: each state signs in once.
    used_nonces: ExpiringKeys
    audit: Audit
    metrics: Metrics
    # WARNING lines (rate limited) and a counter for identity-provider failures.
    idp_failures: IdentityProviderFailures
    # Backstage as an OAuth authorization server: None without auth.staticClients.
    authorization: AuthorizationServer | None = None
    # backend.auth.externalAccess: who may call the service-only routes.
    callers: ServiceCallers | None = None
    # Our plugin tokens (outbound) and the plugin tokens of callers (inbound).
    plugin_tokens: PluginTokenIssuer | None = None
    plugin_callers: PluginCallers | None = None
    # The configured catalog (the who-am-i action returns the caller's entity).
    catalog: Catalog = field(default_factory=InMemoryCatalog)

    @property
    def app_origin(self) -> Origin:
        return self.origin_filter.app_origin


@dataclass(frozen=True)
class OAuthEnvironment:
    name: str
    authenticator: OAuthAuthenticator
    callback_url: str
    cookies: OAuthCookieManager
    sign_in: SignInResolver | None
    post_logout_redirect_uri: str | None = None
    # One deadline for everything one sign-in or one refresh asks of the identity
    # provider (token, profile, keys): the environment's ``timeout``.
    deadline_seconds: float = OUTBOUND_TIMEOUT_SECONDS


@dataclass(frozen=True)
class OAuthProviderRuntime:
    provider_id: str
    services: Services
    environments: Mapping[str, OAuthEnvironment]
    kind: Literal["oauth"] = "oauth"

    def authenticators(self) -> list[OAuthAuthenticator]:
        return [env.authenticator for env in self.environments.values()]


@dataclass(frozen=True)
class ProxyProviderRuntime:
    provider_id: str
    services: Services
    authenticator: ProxyAuthenticator
    sign_in: SignInResolver
    kind: Literal["proxy"] = "proxy"

    def authenticators(self) -> list[ProxyAuthenticator]:
        return [self.authenticator]


ProviderRuntime = OAuthProviderRuntime | ProxyProviderRuntime
