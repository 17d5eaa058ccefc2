"""What the application is built from: its dependencies (production defaults, test fakes),
the database, the stores and the services handlers are given."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from app.authz.callers import ServiceCallers
from app.authz.cimd_fetch import Resolver, direct
from app.authz.plugin_callers import PluginCallers
from app.config.session_secret import server_secrets
from app.config.settings import Settings
from app.config.validation import ConfigError
from app.core.clock import Clock
from app.db.database import Database
from app.handlers.context import Services
from app.identity.catalog import Catalog
from app.identity.db_stores import DatabaseKeyStore, DatabaseUserInfoStore
from app.identity.key_cache import CachedKeyStore
from app.identity.keys import KeyStore, MemoryKeyStore
from app.identity.plugin_keys import (
    DatabasePluginKeys,
    DatabasePublicKeyRows,
    MemoryPublicKeyRows,
    PluginKeySource,
    load_static_plugin_keys,
)
from app.identity.plugin_tokens import PluginTokenIssuer
from app.identity.resolvers import AuthResolverContext
from app.identity.static_keys import StaticKey, StaticKeyStore, load_static_keys
from app.identity.tokens import SUPPORTED_ALGORITHMS, TokenIssuer
from app.identity.user_info import MemoryUserInfoStore, UserInfoStore
from app.oauth.origins import OriginFilter, parse_origin
from app.oauth.sessions import SessionCodec
from app.observability.audit import Audit
from app.observability.idp_failures import IdentityProviderFailures
from app.observability.metrics import Metrics
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDefinition
from app.providers.remote_keys import OutboundHttp
from app.refresh.coalescing import InProcessRefreshCoordinator, RefreshCoordinator
from app.refresh.shared import DatabaseRefreshCoordinator
from app.server.authorization import build_authorization_server
from app.server.http_transport import OutboundTransport
from app.sessions.records import session_records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dependencies:
    """Everything from outside the process; production defaults, test fakes."""

    clock: Clock
    transport: httpx2.AsyncBaseTransport | None = None
    key_store: KeyStore | None = None
    catalog: Catalog | None = None
    user_info: UserInfoStore | None = None
    database: Database | None = None
    # Relative catalog file targets resolve against this (the first config file's folder).
    config_dir: Path | None = None
    data_dir: Path | None = None
    # Provider id -> definition; tests add stub providers here.
    providers: Mapping[str, ProviderDefinition] = field(default_factory=lambda: REGISTRY)
    # Resolves the hosts of Client ID Metadata Documents; None: the system's resolver.
    dns_resolver: Resolver | None = None


def build_database(settings: Settings, deps: Dependencies) -> Database | None:
    """The auth database: ``backend.database``, else a SQLite file in the data directory.

    Embedded use without a data directory (tests) keeps everything in memory.
    """
    if deps.database is not None:
        return deps.database
    if settings.database is None and deps.data_dir is None:
        # Grants and consent sessions need tables; embedded, they live in memory.
        if settings.authorization.enabled:
            return Database("sqlite+aiosqlite:///:memory:")
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


def plugin_keys(
    settings: Settings, database: Database | None, deps: Dependencies
) -> PluginKeySource:
    """``backend.auth.pluginKeyStore``: the database (Backstage's table) unless static."""
    store = settings.plugin_key_store
    if store.type == "static":
        return load_static_plugin_keys(store.static_keys, base_dir=deps.config_dir or Path.cwd())
    rows = DatabasePublicKeyRows(database.engine) if database else MemoryPublicKeyRows()
    return DatabasePluginKeys(rows, deps.clock)


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


def build_services(
    settings: Settings,
    catalog: Catalog,
    metrics: Metrics,
    database: Database | None,
    *,
    development: bool,
    deps: Dependencies,
    plugin_tokens: PluginTokenIssuer,
    transport: httpx2.AsyncBaseTransport | None = None,
    outbound: OutboundTransport | None = None,
) -> Services:
    """``outbound``: the server's own transport (None with a test's fake one), whose proxy
    decision and trust the metadata-document fetch (its own connections) follows."""
    app_origin = parse_origin(settings.app_base_url)
    if app_origin is None:  # read_settings validated it: only a hand-made Settings gets here
        raise ConfigError(f"app.baseUrl: '{settings.app_base_url}' is not an http(s) URL")
    algorithm = settings.identity_token_algorithm
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ConfigError(
            f"auth.identityTokenAlgorithm: '{algorithm}' is not supported; use one of "
            f"{', '.join(sorted(SUPPORTED_ALGORITHMS))} (ES256 is Backstage's default)"
        )
    secrets = server_secrets(
        settings,
        development=development,
        data_dir=deps.data_dir,
        keeps_sessions=any(
            isinstance(deps.providers[provider_id], OAuthProviderDefinition)
            for provider_id in settings.providers
            if provider_id in deps.providers
        ),
    )
    for warning in settings.authorization.warnings:
        log.warning("%s", warning)
    key_store, user_info, static_key = _stores(settings, database, deps)
    sessions = SessionCodec(secrets.all)
    ended, used_nonces = session_records(database, deps.clock)
    audit = Audit(metrics)
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
    authorization = build_authorization_server(
        settings,
        database,
        issuer,
        catalog,
        secrets.all,
        deps.clock,
        audit,
        development=development,
        resolver=deps.dns_resolver,
        proxy_for=outbound.proxies.proxy_for if outbound is not None else direct,
        tls=outbound.trust.context if outbound is not None else None,
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
        ended_sessions=ended,
        used_nonces=used_nonces,
        audit=audit,
        idp_failures=IdentityProviderFailures(metrics),
        metrics=metrics,
        authorization=authorization,
        callers=ServiceCallers(
            settings.authorization.external_access,
            deps.clock,
            OutboundHttp(transport or deps.transport),
        ),
        plugin_tokens=plugin_tokens,
        plugin_callers=PluginCallers(
            settings.plugins, OutboundHttp(transport or deps.transport), deps.clock, issuer
        ),
        catalog=catalog,
    )
