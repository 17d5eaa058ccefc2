"""What provider factories receive and return."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx2

from app.core.clock import Clock
from app.identity.resolvers import ResolverFactory, SignInResolver
from app.providers.base import OAuthAuthenticator, ProxyAuthenticator
from app.providers.settings import OAuthEnvSettings, SignInSettings


@dataclass(frozen=True)
class ProviderDeps:
    clock: Clock
    development: bool
    transport: httpx2.AsyncBaseTransport | None = None


@dataclass(frozen=True)
class OAuthProviderBuild:
    authenticator: OAuthAuthenticator
    settings: OAuthEnvSettings
    # A provider's own resolver when config names none (openshift's, as in Backstage).
    default_resolver: SignInResolver | None = None


@dataclass(frozen=True)
class ProxyProviderBuild:
    authenticator: ProxyAuthenticator
    sign_in: SignInSettings | None
    # A provider's own default resolver, used when config names none (guest's).
    default_resolver: SignInResolver | None = None


OAuthFactory = Callable[[dict[str, Any], str, ProviderDeps], OAuthProviderBuild]
ProxyFactory = Callable[[dict[str, Any], str, ProviderDeps], ProxyProviderBuild]


@dataclass(frozen=True)
class OAuthProviderDefinition:
    factory: OAuthFactory
    # Sign-in resolvers available to this provider's config, by name.
    resolvers: Mapping[str, ResolverFactory] = field(default_factory=dict)
    # Provider-specific /start query parameters passed through to StartInput.extra_params
    # (declared in the rendered spec, e.g. auth0's organization).
    start_params: tuple[str, ...] = ()
    # What sign-out does for an environment's raw config (``federatedLogout``), in words
    # for check-config; None where sign-out never leaves the app.
    describe_sign_out: Callable[[Mapping[str, Any]], str] | None = None
    kind: ClassVar[Literal["oauth"]] = "oauth"


@dataclass(frozen=True)
class ProxyProviderDefinition:
    factory: ProxyFactory
    resolvers: Mapping[str, ResolverFactory] = field(default_factory=dict)
    # Proxy providers start no flows and never leave the app: kept for uniform access.
    start_params: tuple[str, ...] = ()
    describe_sign_out: Callable[[Mapping[str, Any]], str] | None = None
    kind: ClassVar[Literal["proxy"]] = "proxy"


# The kind is the type: an isinstance check narrows the factory and what it builds.
ProviderDefinition = OAuthProviderDefinition | ProxyProviderDefinition
