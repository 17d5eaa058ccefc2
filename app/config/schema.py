"""The schema of the keys this server reads (pydantic); keys it does not read are ignored."""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, field_validator

from app.config.backend import (
    DEFAULT_MAX_CALLBACK_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADER_FIELDS,
    DEFAULT_METHODS,
    CorsSettings,
    RateLimitSettings,
    RequestLimitSettings,
)
from app.config.validation import Lenient, string_list
from app.core.durations import parse_duration_seconds
from app.oauth.origins import OriginPattern, absolute_http_url


def _http_url(value: str) -> str:
    # Base URLs: compared and joined without their trailing slash, as Backstage does.
    return absolute_http_url(value).rstrip("/")


class _AppConfig(Lenient):
    baseUrl: str

    _check_url = field_validator("baseUrl")(_http_url)


class _Listen(Lenient):
    host: str = ""
    port: int = Field(7007, ge=0, le=65535)


class _MetricsListen(Lenient):
    """Ours: serve /metrics on this address instead of the main listener."""

    host: str = "0.0.0.0"
    port: int = Field(ge=1, le=65535)


class _CorsConfig(Lenient):
    origin: str | list[str]
    methods: Any = None
    credentials: bool = False
    allowedHeaders: Any = None
    exposedHeaders: Any = None
    maxAge: int | None = Field(None, ge=0)

    @field_validator("origin")
    @classmethod
    def _origins(cls, value: str | list[str]) -> str | list[str]:
        for pattern in [value] if isinstance(value, str) else value:
            OriginPattern.compile(pattern)
        return value

    @field_validator("methods", "allowedHeaders", "exposedHeaders")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        string_list(value)
        return value

    def settings(self) -> CorsSettings:
        return CorsSettings(
            origins=tuple([self.origin] if isinstance(self.origin, str) else self.origin),
            methods=tuple(string_list(self.methods)) or DEFAULT_METHODS,
            credentials=self.credentials,
            allowed_headers=tuple(string_list(self.allowedHeaders)),
            exposed_headers=tuple(string_list(self.exposedHeaders)),
            max_age_seconds=self.maxAge,
        )


class _RateLimitConfig(Lenient):
    window: Any = "1m"
    incomingRequestLimit: int = Field(100, ge=1)
    ipAllowList: list[str] = Field(default_factory=list)

    @field_validator("window")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if parse_duration_seconds(value) <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("ipAllowList")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    def settings(self) -> RateLimitSettings:
        return RateLimitSettings(
            window_seconds=parse_duration_seconds(self.window),
            limit=self.incomingRequestLimit,
            allow_list=tuple(self.ipAllowList),
        )


class _RequestLimitsConfig(Lenient):
    headerFields: int = Field(DEFAULT_MAX_HEADER_FIELDS, ge=10)
    headerBytes: int = Field(DEFAULT_MAX_HEADER_BYTES, ge=8 * 1024)
    # Starlette refuses a form part over 1 MiB on its own (as an error the handlers would
    # not turn into Backstage's 413): no larger cap.
    callbackBodyBytes: int = Field(DEFAULT_MAX_CALLBACK_BODY_BYTES, ge=1024, le=1024 * 1024)

    def settings(self) -> RequestLimitSettings:
        return RequestLimitSettings(
            header_fields=self.headerFields,
            header_bytes=self.headerBytes,
            callback_body_bytes=self.callbackBodyBytes,
        )


class _BackendConfig(Lenient):
    # Read from the raw config (app.db, app.config.authorization): known, not typos.
    read_elsewhere: ClassVar[frozenset[str]] = frozenset({"database", "auth"})
    baseUrl: str
    listen: _Listen = Field(default_factory=lambda: _Listen())
    cors: _CorsConfig | None = None
    # Backstage's shape: `true`, or options; `plugin.auth` options win for this server.
    rateLimit: bool | _RateLimitConfig | dict[str, Any] | None = None
    # Ours: proxies whose X-Forwarded-* headers are honoured (addresses or CIDRs).
    trustedProxies: list[str] = Field(default_factory=list)
    # Ours: header and callback body caps (431, 413).
    requestLimits: _RequestLimitsConfig = Field(default_factory=lambda: _RequestLimitsConfig())
    # Ours: exposure. The demo page at / (default: in development only), the Swagger UIs
    # and /docs (default: on), /metrics on its own listener (default: the main one).
    demoPage: bool | None = None
    swaggerUi: bool = True
    metrics: _MetricsListen | None = None

    @field_validator("trustedProxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("rateLimit", mode="before")
    @classmethod
    def _rate_limit(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool | dict):
            raise ValueError(
                f"must be true, false or an object {{window, incomingRequestLimit, "
                f"ipAllowList}}, not {value!r}"
            )
        if isinstance(value, dict):
            plugin = value.get("plugin", {})
            chosen = plugin.get("auth", value) if isinstance(plugin, dict) else value
            return _RateLimitConfig.model_validate(
                {k: v for k, v in chosen.items() if k != "plugin"}
            )
        return value

    def rate_limit(self) -> RateLimitSettings | None:
        if self.rateLimit is True:
            return _RateLimitConfig().settings()
        if isinstance(self.rateLimit, _RateLimitConfig):
            return self.rateLimit.settings()
        return None

    _check_url = field_validator("baseUrl")(_http_url)

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: Any) -> Any:
        if isinstance(value, str):
            # Backstage accepts "host:port" or ":port".
            host, _, port = value.rpartition(":")
            if not port.isdigit():
                raise ValueError("must be an object {host, port} or a string 'host:port'")
            return {"host": host, "port": int(port)}
        return value


class _SessionConfig(Lenient):
    secret: str | None = Field(None, min_length=1)
    # Ours: secrets that still decrypt during a rotation.
    previousSecrets: list[str] = Field(default_factory=list)
    # Ours: until when a Backstage refresh cookie (the provider's raw refresh token) is
    # accepted once and answered with a sealed one (a switch from Backstage).
    acceptLegacyRefreshCookiesUntil: AwareDatetime | None = None
    # Ours: how long a refresh result is reused for requests racing behind it.
    refreshGracePeriod: Any = None
    # Ours: where racing refreshes meet. "database" spans instances (the default with a
    # PostgreSQL backend.database); "memory" is per process.
    refreshCoordination: Literal["database", "memory"] | None = None

    @field_validator("refreshGracePeriod")
    @classmethod
    def _grace(cls, value: Any) -> Any:
        if value is not None and parse_duration_seconds(value) < 0:
            raise ValueError("must not be negative")
        return value


class _StaticKeysConfig(Lenient):
    keys: list[dict[str, Any]] = Field(default_factory=list)


class _KeyStoreConfig(Lenient):
    provider: Literal["database", "memory", "static"] = "database"
    static: _StaticKeysConfig | None = None


class _AuthConfig(Lenient):
    # Read from the raw config by their own modules: known, not typos.
    read_elsewhere: ClassVar[frozenset[str]] = frozenset(
        {
            "catalog",
            "devIdentityProvider",
            "staticClients",
            "experimentalRefreshToken",
            "experimentalDynamicClientRegistration",
            "clientIdMetadataDocuments",
        }
    )
    environment: str = "development"
    session: _SessionConfig = Field(default_factory=lambda: _SessionConfig())
    providers: dict[str, Any] = Field(default_factory=dict)
    experimentalExtraAllowedOrigins: list[str] = Field(default_factory=list)
    backstageTokenExpiration: Any = None
    identityTokenAlgorithm: str = "ES256"
    keyStore: _KeyStoreConfig = Field(default_factory=lambda: _KeyStoreConfig())
    omitIdentityTokenOwnershipClaim: bool = True
    # Ours (Backstage has none): the deadline of one sign-in callback or one /refresh,
    # all its calls and retries together (default REQUEST_DEADLINE_SECONDS).
    requestDeadline: Any = None

    @field_validator("requestDeadline")
    @classmethod
    def _deadline(cls, value: Any) -> Any:
        if value is not None and parse_duration_seconds(value) <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not isinstance(item, dict):
                raise ValueError(f"'{key}' must be a mapping")
        return value

    @field_validator("experimentalExtraAllowedOrigins")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            OriginPattern.compile(pattern)
        return value

    @field_validator("backstageTokenExpiration")
    @classmethod
    def _expiration(cls, value: Any) -> Any:
        if value is not None:
            parse_duration_seconds(value)
        return value


class RootConfig(Lenient):
    app: _AppConfig
    backend: _BackendConfig
    auth: _AuthConfig = Field(default_factory=_AuthConfig)
