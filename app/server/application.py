"""Builds the ASGI application: one connexion API per configured provider.

``create_app`` takes the validated settings and every outside dependency (clock, HTTP
transport, key store, catalog) as parameters, so tests run the real app with fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from asgi_correlation_id import CorrelationIdMiddleware
from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.middleware.routing import RoutingMiddleware
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from app.config.session_secret import server_secrets
from app.config.settings import Settings
from app.config.validation import ConfigError
from app.core.clock import Clock, SystemClock
from app.core.errors import BackstageError
from app.db.database import Database
from app.devidp import mount_configured_dev_idp
from app.handlers.context import (
    OAuthEnvironment,
    OAuthProviderRuntime,
    ProviderRuntime,
    ProxyProviderRuntime,
    Services,
)
from app.identity.catalog import Catalog
from app.identity.catalog_config import aclose_catalog, catalog_from_config
from app.identity.db_stores import DatabaseKeyStore, DatabaseUserInfoStore
from app.identity.key_cache import CachedKeyStore
from app.identity.keys import KeyStore, MemoryKeyStore
from app.identity.resolvers import (
    AuthResolverContext,
    ResolverConfigError,
    SignInResolver,
    build_sign_in_resolver,
)
from app.identity.static_keys import StaticKey, StaticKeyStore, load_static_keys
from app.identity.tokens import TokenIssuer
from app.identity.user_info import MemoryUserInfoStore, UserInfoStore
from app.oauth.cookies import OAuthCookieManager
from app.oauth.origins import ORIGIN_QUERY_PATTERN, OriginFilter, parse_origin
from app.oauth.sessions import SessionCodec
from app.observability.audit import Audit
from app.observability.logs import REQUEST_ID_HEADER, is_safe_request_id
from app.observability.metrics import MeteredTransport, Metrics
from app.providers.base import OAuthAuthenticator, ProxyAuthenticator
from app.providers.registry import REGISTRY
from app.providers.registry_types import (
    OAuthProviderBuild,
    ProviderDefinition,
    ProviderDeps,
    ProxyProviderBuild,
)
from app.refresh.coalescing import InProcessRefreshCoordinator, RefreshCoordinator
from app.refresh.shared import DatabaseRefreshCoordinator
from app.server import error_handlers
from app.server.http_transport import OutboundTransport
from app.server.lean_app import LeanAsyncApp, middlewares
from app.server.metrics_listener import metrics_listener
from app.server.middleware.cors import BackstageCORSMiddleware
from app.server.middleware.edge import ClientAddress, RateLimit
from app.server.middleware.metrics import MetricsMiddleware
from app.server.resolver import BoundResolver
from app.server.spec_loader import load_spec

log = logging.getLogger(__name__)

# app/spec links to the top-level spec/ in a checkout; a built wheel carries the files.
SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"


@dataclass(frozen=True)
class Dependencies:
    """Everything from outside the process; production defaults, test fakes."""

    clock: Clock
    transport: httpx.AsyncBaseTransport | None = None
    key_store: KeyStore | None = None
    catalog: Catalog | None = None
    user_info: UserInfoStore | None = None
    database: Database | None = None
    # Relative catalog file targets resolve against this (the first config file's folder).
    config_dir: Path | None = None
    data_dir: Path | None = None
    # Provider id -> definition; tests add stub providers here.
    providers: Mapping[str, ProviderDefinition] = field(default_factory=lambda: REGISTRY)


def create_app(
    settings: Settings,
    *,
    development: bool = False,
    deps: Dependencies | None = None,
    validate_responses: bool = False,
) -> AsyncApp:
    """Build the application.

    Raises:
        ConfigError: when a provider's config is invalid (the message names the key path).
    """
    deps = deps or Dependencies(clock=SystemClock())
    metrics = Metrics(set(settings.providers))
    # Every call to an identity provider or catalog goes through one metered transport.
    outbound = MeteredTransport(deps.transport or OutboundTransport(), metrics)
    catalog = deps.catalog
    if catalog is None:
        catalog = catalog_from_config(
            settings.raw,
            config_dir=deps.config_dir or Path.cwd(),
            clock=deps.clock,
            transport=outbound,
        )
    database = _database(settings, deps)
    services = _build_services(
        settings, catalog, metrics, database, development=development, deps=deps
    )
    runtimes = _build_runtimes(
        settings,
        services,
        ProviderDeps(clock=deps.clock, development=development, transport=outbound),
        deps.providers,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if database is not None:
            # Create and migrate; an unreachable database stops the start, as in Backstage.
            await database.start()
        listeners = contextlib.AsyncExitStack()
        if settings.metrics_listen is not None:
            await listeners.enter_async_context(metrics_listener(metrics, *settings.metrics_listen))
        # The first key waits out its publish delay while nobody is signing in yet.
        warm_up = asyncio.create_task(services.token_issuer.publish_first_key())
        try:
            yield
        finally:
            await listeners.aclose()
            warm_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm_up
            await services.token_issuer.aclose()
            for runtime in runtimes:
                for authenticator in runtime.authenticators():
                    await authenticator.aclose()
            await aclose_catalog(catalog)
            await outbound.aclose()
            if database is not None:
                await database.close()

    app = LeanAsyncApp(
        __name__,
        specification_dir=str(SPEC_DIR),
        lifespan=lifespan,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=settings.swagger_ui),
        middlewares=middlewares(),
    )
    _add_apis(app, runtimes, services, deps.providers, validate_responses=validate_responses)
    _add_middlewares(app, settings, metrics)
    # After the others: inside request ids, metrics, CORS and rate limiting.
    mount_configured_dev_idp(app, settings, development=development)
    app.add_error_handler(BackstageError, error_handlers.backstage_error)
    app.add_error_handler(ProblemException, error_handlers.problem)
    app.add_error_handler(
        HTTPException, functools.partial(error_handlers.http_error, routes=lambda: _routes(app))
    )
    app.add_error_handler(Exception, error_handlers.unexpected)
    return app


def _routes(app: AsyncApp) -> list[BaseRoute]:
    """The operation routes of connexion's routing middleware (built on first request)."""
    for middleware in app.middleware.middleware_stack:
        if isinstance(middleware, RoutingMiddleware):
            return list(middleware.router.routes)
    return []


# Every document _add_apis mounts (tests/server/test_spec_loader.py validates each one, as
# LeanAsyncApp.add_api does not): this one once per provider, from these arguments...
PROVIDER_DOCUMENT = "openapi.yaml"


def provider_document_arguments(provider_id: str, definition: ProviderDefinition) -> dict[str, Any]:
    return {
        "provider": provider_id,
        "kind": definition.kind,
        "start_params": definition.start_params,
        "origin_pattern": ORIGIN_QUERY_PATTERN,
    }


# ... then these, with their base paths. After the providers' documents: a mount at
# /api/auth would otherwise swallow theirs.
SERVICE_DOCUMENTS: tuple[tuple[str, str], ...] = (
    ("identity.yaml", "/api/auth"),
    ("health.yaml", "/.backstage/health/v1"),
    ("operations.yaml", ""),
    # Also at "": routed after operations (connexion chains APIs of one base path).
    ("pages.yaml", ""),
)


def _add_apis(
    app: AsyncApp,
    runtimes: list[ProviderRuntime],
    services: Services,
    providers: Mapping[str, ProviderDefinition],
    *,
    validate_responses: bool,
) -> None:
    # The documents are rendered and parsed here (libyaml, templates compiled once), not
    # by connexion (pure-Python YAML per add_api): see app.server.spec_loader.
    for runtime in runtimes:
        module = "app.handlers.oauth" if runtime.kind == "oauth" else "app.handlers.proxy"
        app.add_api(
            load_spec(
                SPEC_DIR / PROVIDER_DOCUMENT,
                provider_document_arguments(runtime.provider_id, providers[runtime.provider_id]),
            ),
            base_path=f"/api/auth/{runtime.provider_id}",
            name=f"auth-{runtime.provider_id}",
            resolver=BoundResolver(module, runtime=runtime),
            pythonic_params=True,
            validate_responses=validate_responses,
        )
    for spec, base_path in SERVICE_DOCUMENTS:
        app.add_api(
            load_spec(SPEC_DIR / spec),
            base_path=base_path,
            name=spec.removesuffix(".yaml"),
            resolver=BoundResolver(f"app.handlers.{spec.removesuffix('.yaml')}", services=services),
            validate_responses=validate_responses,
        )


def _add_middlewares(app: AsyncApp, settings: Settings, metrics: Metrics) -> None:
    # Outermost first. All sit outside the exception middleware, so error responses (the
    # 401 of the first /refresh above all) are counted and carry CORS headers too.
    app.add_middleware(
        ClientAddress,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        trusted_proxies=settings.trusted_proxies,
    )
    app.add_middleware(
        CorrelationIdMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        header_name=REQUEST_ID_HEADER,
        validator=is_safe_request_id,
    )
    app.add_middleware(
        MetricsMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, metrics=metrics
    )
    if settings.cors is not None:
        app.add_middleware(
            BackstageCORSMiddleware,
            position=MiddlewarePosition.BEFORE_EXCEPTION,
            settings=settings.cors,
        )
    if settings.rate_limit is not None:
        # Inside CORS, so a browser sees the 429 rather than a network error.
        app.add_middleware(
            RateLimit, position=MiddlewarePosition.BEFORE_EXCEPTION, settings=settings.rate_limit
        )


def _database(settings: Settings, deps: Dependencies) -> Database | None:
    """The auth database: ``backend.database``, else a SQLite file in the data directory.

    Embedded use without a data directory (tests) keeps everything in memory.
    """
    if deps.database is not None:
        return deps.database
    if settings.database is None and deps.data_dir is None:
        return None
    return Database.from_backstage_config(settings.database, data_dir=deps.data_dir or Path.cwd())


def _stores(
    settings: Settings, database: Database | None, deps: Dependencies
) -> tuple[KeyStore, UserInfoStore, StaticKey | None]:
    # Backstage keeps user_info in the database whatever keyStore.provider says.
    user_info = deps.user_info or (
        DatabaseUserInfoStore(database.engine) if database else MemoryUserInfoStore()
    )
    if deps.key_store is not None:
        return deps.key_store, user_info, None
    if settings.key_store_provider == "static":
        keys = load_static_keys(
            settings.static_keys,
            base_dir=deps.config_dir or Path.cwd(),
            path="auth.keyStore.static.keys",
        )
        return StaticKeyStore(keys), user_info, keys[0]
    if settings.key_store_provider == "database" and database is not None:
        # Read on every JWKS request otherwise. The issuer takes its publish delay from the
        # cache (TokenIssuer's publish_delay), so other instances' caches never lack a key.
        cached = CachedKeyStore(
            DatabaseKeyStore(database.engine), deps.clock, exclusive=database.is_in_memory
        )
        return cached, user_info, None
    return MemoryKeyStore(), user_info, None


def _refresh_coordinator(
    settings: Settings, database: Database | None, sessions: SessionCodec, clock: Clock
) -> RefreshCoordinator:
    mode = settings.refresh_coordination
    if mode is None:
        # Several instances share a PostgreSQL database; a SQLite file means one instance.
        mode = "database" if database is not None and database.is_shared else "memory"
    if mode == "database":
        if database is None:
            raise ConfigError("auth.session.refreshCoordination: database needs backend.database")
        return DatabaseRefreshCoordinator(
            database.engine, sessions, clock, grace_seconds=settings.refresh_grace_seconds
        )
    return InProcessRefreshCoordinator(clock, grace_seconds=settings.refresh_grace_seconds)


def _build_services(
    settings: Settings,
    catalog: Catalog,
    metrics: Metrics,
    database: Database | None,
    *,
    development: bool,
    deps: Dependencies,
) -> Services:
    app_origin = parse_origin(settings.app_base_url)
    assert app_origin is not None  # validated by read_settings
    secrets = server_secrets(settings, development=development, data_dir=deps.data_dir)
    key_store, user_info, static_key = _stores(settings, database, deps)
    sessions = SessionCodec(secrets.all)
    issuer = TokenIssuer(
        issuer=settings.auth_base_url,
        key_store=key_store,
        clock=deps.clock,
        algorithm=settings.identity_token_algorithm,
        expiration_seconds=settings.token_expiration_seconds,
        omit_ownership_claim=settings.omit_ownership_claim,
        user_info=user_info,
        on_new_key=lambda _kid: metrics.key_rotations.inc(),
        static_key=static_key,
    )
    return Services(
        settings=settings,
        clock=deps.clock,
        development=development,
        origin_filter=OriginFilter(app_origin, settings.extra_allowed_origins),
        token_issuer=issuer,
        user_info=user_info,
        resolver_context=AuthResolverContext(issuer, catalog),
        flow_key=secrets.flow_key,
        sessions=sessions,
        refresh_coordinator=_refresh_coordinator(settings, database, sessions, deps.clock),
        audit=Audit(metrics),
        metrics=metrics,
    )


def _build_runtimes(
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
                "auth provider '%s' is not implemented by this server; not mounted", provider_id
            )
            continue
        if definition.kind == "proxy":
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


def _sign_in(
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
    definition: ProviderDefinition,
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
        assert isinstance(build, OAuthProviderBuild)
        authenticator: OAuthAuthenticator = build.authenticator
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
            authenticator=authenticator,
            callback_url=callback_url,
            cookies=OAuthCookieManager(
                provider_id=provider_id,
                callback_url=callback_url,
                default_app_origin=services.app_origin,
                session_max_age_seconds=build.settings.session_duration_seconds,
                clock=services.clock,
            ),
            # Config first, then the provider's own default (Backstage's order).
            sign_in=_sign_in(
                definition, sign_in.resolvers if sign_in else None, f"{env_path}.signIn.resolvers"
            )
            or build.default_resolver,
            post_logout_redirect_uri=post_logout,
        )
    return OAuthProviderRuntime(
        provider_id=provider_id, services=services, environments=environments
    )


def _proxy_runtime(
    provider_id: str,
    definition: ProviderDefinition,
    config: dict[str, Any],
    path: str,
    services: Services,
    deps: ProviderDeps,
) -> ProxyProviderRuntime:
    build = definition.factory(config, path, deps)
    assert isinstance(build, ProxyProviderBuild)
    authenticator: ProxyAuthenticator = build.authenticator
    configured = _sign_in(
        definition, build.sign_in.resolvers if build.sign_in else None, f"{path}.signIn.resolvers"
    )
    # Proxy providers: a provider's own resolver first, then config (Backstage).
    sign_in = build.default_resolver or configured
    if sign_in is None:
        raise ConfigError(f"No sign-in resolver configured for proxy auth provider '{provider_id}'")
    return ProxyProviderRuntime(
        provider_id=provider_id, services=services, authenticator=authenticator, sign_in=sign_in
    )
