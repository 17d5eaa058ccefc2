"""One runtime per configured provider: its authenticator(s) built from config, its
environments, cookies and sign-in resolver. The definition's type is its kind, so each
factory's result is typed without a check at run time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.config.settings import Settings
from app.config.suggest import closest
from app.config.validation import ConfigError
from app.core.errors import BackstageError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.handlers.context import (
    OAuthEnvironment,
    OAuthProviderRuntime,
    ProviderRuntime,
    ProxyProviderRuntime,
    Services,
)
from app.identity.resolvers import ResolverConfigError, SignInResolver, build_sign_in_resolver
from app.oauth.cookies import OAuthCookieManager
from app.providers.oauth2_base import OAuth2Authenticator
from app.providers.registry_types import (
    OAuthProviderDefinition,
    ProviderDefinition,
    ProviderDeps,
    ProxyProviderDefinition,
)

log = logging.getLogger(__name__)


def build_runtimes(
    settings: Settings,
    services: Services,
    provider_deps: ProviderDeps,
    providers: Mapping[str, ProviderDefinition],
) -> list[ProviderRuntime]:
    runtimes: list[ProviderRuntime] = []
    for provider_id, provider_config in settings.providers.items():
        definition = providers.get(provider_id)
        path = f"auth.providers.{provider_id}"
        if definition is None:
            # Backstage: a provider no module registers is simply not mounted (404).
            log.warning(
                "auth provider '%s' is not implemented by this server; not mounted%s",
                provider_id,
                _did_you_mean(provider_id, providers),
            )
            continue
        if isinstance(definition, ProxyProviderDefinition):
            runtimes.append(
                _proxy_runtime(
                    provider_id, definition, dict(provider_config), path, services, provider_deps
                )
            )
        else:
            runtimes.append(
                _oauth_runtime(
                    provider_id, definition, provider_config, path, services, provider_deps
                )
            )
    return runtimes


def _did_you_mean(provider_id: str, providers: Mapping[str, ProviderDefinition]) -> str:
    guess = closest(provider_id, providers)
    return f" (did you mean {guess}?)" if guess else ""


def configured_sign_in(
    definition: ProviderDefinition, resolvers: list[dict[str, Any]] | None, path: str
) -> SignInResolver | None:
    if not resolvers:
        return None
    try:
        return build_sign_in_resolver(resolvers, available=definition.resolvers, config_path=path)
    except ResolverConfigError as exc:
        raise ConfigError(str(exc)) from exc


def _oauth_runtime(
    provider_id: str,
    definition: OAuthProviderDefinition,
    config: Any,
    path: str,
    services: Services,
    deps: ProviderDeps,
) -> OAuthProviderRuntime:
    environments: dict[str, OAuthEnvironment] = {}
    for env_name, env_config in config.items():
        env_path = f"{path}.{env_name}"
        if not isinstance(env_config, dict):
            raise ConfigError(f"{env_path}: must be a mapping of provider options")
        build = definition.factory(env_config, env_path, deps)
        deadline = build.settings.timeout_seconds or OUTBOUND_TIMEOUT_SECONDS
        if isinstance(build.authenticator, OAuth2Authenticator):
            build.authenticator.set_timeouts(deadline, build.settings.connect_timeout_seconds)
        callback_url = (
            build.settings.callbackUrl
            or f"{services.settings.auth_base_url}/{provider_id}/handler/frame"
        )
        sign_in = build.settings.signIn
        post_logout = build.settings.postLogoutRedirectUri
        if post_logout is not None:
            try:
                services.origin_filter.check_redirect_url(post_logout)
            except BackstageError as exc:
                raise ConfigError(f"{env_path}.postLogoutRedirectUri: {exc.message}") from exc
        environments[env_name] = OAuthEnvironment(
            name=env_name,
            authenticator=build.authenticator,
            callback_url=callback_url,
            cookies=OAuthCookieManager(
                provider_id=provider_id,
                callback_url=callback_url,
                default_app_origin=services.app_origin,
                session_max_age_seconds=build.settings.session_duration_seconds,
                clock=services.clock,
            ),
            # Config first, then the provider's own default (Backstage's order).
            sign_in=configured_sign_in(
                definition, sign_in.resolvers if sign_in else None, f"{env_path}.signIn.resolvers"
            )
            or build.default_resolver,
            post_logout_redirect_uri=post_logout,
            deadline_seconds=deadline,
        )
    return OAuthProviderRuntime(
        provider_id=provider_id, services=services, environments=environments
    )


def _proxy_runtime(
    provider_id: str,
    definition: ProxyProviderDefinition,
    config: dict[str, Any],
    path: str,
    services: Services,
    deps: ProviderDeps,
) -> ProxyProviderRuntime:
    build = definition.factory(config, path, deps)
    configured = configured_sign_in(
        definition, build.sign_in.resolvers if build.sign_in else None, f"{path}.signIn.resolvers"
    )
    # Proxy providers: a provider's own resolver first, then config (Backstage).
    sign_in = build.default_resolver or configured
    if sign_in is None:
        raise ConfigError(f"No sign-in resolver configured for proxy auth provider '{provider_id}'")
    return ProxyProviderRuntime(
        provider_id=provider_id,
        services=services,
        authenticator=build.authenticator,
        sign_in=sign_in,
    )
