"""The validated settings the server runs with (``read_settings``).

Files are read in order and deep-merged (objects merge, everything else is replaced by
the later file), then ``APP_CONFIG_<path>`` environment variables override single keys,
as Backstage's config loader does. In strings, ``${VAR}`` is replaced by the environment
variable (a value whose variable is unset is dropped, as in Backstage) and ``$${`` escapes;
``{$env: VAR}`` and ``{$file: path}`` objects are supported too. Keys of other Backstage
plugins are ignored. Every error names the key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.config.authorization import AuthorizationSettings, read_authorization
from app.config.backend import CorsSettings, RateLimitSettings, RequestLimitSettings
from app.config.discovery import OWN_PLUGIN_ID, Discovery, read_discovery
from app.config.plugin_keys import PluginKeyStoreSettings, read_plugin_key_store
from app.config.schema import RootConfig
from app.config.validation import ConfigError, validate_model
from app.core.durations import parse_duration_seconds
from app.core.timeouts import REQUEST_DEADLINE_SECONDS

DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600
DEFAULT_REFRESH_GRACE_SECONDS = 5.0
MIN_TOKEN_EXPIRATION_SECONDS = 600
MAX_TOKEN_EXPIRATION_SECONDS = 86400


@dataclass(frozen=True)
class Settings:
    app_base_url: str
    backend_base_url: str
    listen_host: str
    listen_port: int
    auth_environment: str
    session_secret: str | None
    previous_session_secrets: tuple[str, ...]
    providers: Mapping[str, Mapping[str, Any]]
    extra_allowed_origins: tuple[str, ...]
    token_expiration_seconds: int
    identity_token_algorithm: str
    omit_ownership_claim: bool
    cors: CorsSettings | None = None
    refresh_grace_seconds: float = DEFAULT_REFRESH_GRACE_SECONDS
    # auth.requestDeadline: one sign-in callback or one /refresh, everything it does.
    request_deadline_seconds: float = REQUEST_DEADLINE_SECONDS
    rate_limit: RateLimitSettings | None = None
    trusted_proxies: tuple[str, ...] = ()
    request_limits: RequestLimitSettings = field(default_factory=RequestLimitSettings)
    # backend.demoPage (None: development only), backend.swaggerUi, backend.metrics.
    demo_page: bool | None = None
    swagger_ui: bool = True
    metrics_listen: tuple[str, int] | None = None
    refresh_coordination: str | None = None
    key_store_provider: str = "database"
    static_keys: tuple[dict[str, Any], ...] = ()
    # backend.database as written (None when absent): read by app.db.
    database: Mapping[str, Any] | None = None
    # Backstage as an OAuth authorization server (auth.staticClients, refresh tokens).
    authorization: AuthorizationSettings = AuthorizationSettings()
    # auth.session.acceptLegacyRefreshCookiesUntil, epoch seconds (app.handlers.legacy_cookies).
    legacy_refresh_cookies_until: float | None = None
    # The whole merged config, for sections read elsewhere (backend.cors, catalog, ...).
    raw: Mapping[str, Any] = field(default_factory=dict)
    # backend.baseUrl, backend.listen and discovery.endpoints (None: the fallbacks only).
    discovery: Discovery | None = None
    # backend.auth.pluginKeyStore: the keys of our plugin tokens.
    plugin_key_store: PluginKeyStoreSettings = PluginKeyStoreSettings()

    @property
    def plugins(self) -> Discovery:
        """Where each Backstage plugin is, ourselves included."""
        if self.discovery is not None:
            return self.discovery
        return read_discovery(
            {},
            backend_base_url=self.backend_base_url,
            listen_host=self.listen_host,
            listen_port=self.listen_port,
        )

    @property
    def auth_base_url(self) -> str:
        """``iss`` of our tokens, the base of callback URLs and of every link we publish:
        discovery's external URL of ``auth`` (``<backend.baseUrl>/api/auth`` by default),
        as Backstage's auth backend takes it."""
        return self.plugins.external(OWN_PLUGIN_ID).rstrip("/")


def _database_config(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    backend = raw.get("backend")
    database = backend.get("database") if isinstance(backend, Mapping) else None
    if database is not None and not isinstance(database, Mapping):
        raise ConfigError("backend.database: must be a mapping")
    return database


def read_settings(raw: Mapping[str, Any]) -> Settings:
    """Validate the merged config.

    Raises:
        ConfigError: naming each failing key path.
    """
    root = validate_model(RootConfig, raw, "")
    auth = root.auth
    expiration = DEFAULT_TOKEN_EXPIRATION_SECONDS
    if auth.backstageTokenExpiration is not None:
        seconds = parse_duration_seconds(auth.backstageTokenExpiration)
        # Backstage clamps: these tokens cannot be revoked, so they may not live long.
        expiration = int(
            min(max(seconds, MIN_TOKEN_EXPIRATION_SECONDS), MAX_TOKEN_EXPIRATION_SECONDS)
        )
    listen = root.backend.listen
    return Settings(
        app_base_url=root.app.baseUrl,
        backend_base_url=root.backend.baseUrl,
        listen_host=listen.host,
        listen_port=listen.port,
        auth_environment=auth.environment,
        session_secret=auth.session.secret,
        previous_session_secrets=tuple(auth.session.previousSecrets),
        legacy_refresh_cookies_until=(
            until.timestamp()
            if (until := auth.session.acceptLegacyRefreshCookiesUntil) is not None
            else None
        ),
        providers=auth.providers,
        extra_allowed_origins=tuple(auth.experimentalExtraAllowedOrigins),
        token_expiration_seconds=expiration,
        identity_token_algorithm=auth.identityTokenAlgorithm,
        omit_ownership_claim=auth.omitIdentityTokenOwnershipClaim,
        cors=root.backend.cors.settings() if root.backend.cors else None,
        rate_limit=root.backend.rate_limit(),
        refresh_coordination=auth.session.refreshCoordination,
        trusted_proxies=tuple(root.backend.trustedProxies),
        request_limits=root.backend.requestLimits.settings(),
        demo_page=root.backend.demoPage,
        swagger_ui=root.backend.swaggerUi,
        metrics_listen=(
            (root.backend.metrics.host, root.backend.metrics.port)
            if root.backend.metrics is not None
            else None
        ),
        key_store_provider=auth.keyStore.provider,
        static_keys=tuple(auth.keyStore.static.keys if auth.keyStore.static else ()),
        database=_database_config(raw),
        authorization=read_authorization(raw),
        refresh_grace_seconds=(
            parse_duration_seconds(auth.session.refreshGracePeriod)
            if auth.session.refreshGracePeriod is not None
            else DEFAULT_REFRESH_GRACE_SECONDS
        ),
        request_deadline_seconds=(
            parse_duration_seconds(auth.requestDeadline)
            if auth.requestDeadline is not None
            else REQUEST_DEADLINE_SECONDS
        ),
        raw=dict(raw),
        plugin_key_store=read_plugin_key_store(raw),
        discovery=read_discovery(
            raw,
            backend_base_url=root.backend.baseUrl,
            listen_host=listen.host,
            listen_port=listen.port,
        ),
    )
