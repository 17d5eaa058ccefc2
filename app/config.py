"""Backstage's ``app-config.yaml``: loading, merging, substitution and validation.

Files are read in order and deep-merged (objects merge, everything else is replaced by
the later file), then ``APP_CONFIG_<path>`` environment variables override single keys,
as Backstage's config loader does. In strings, ``${VAR}`` is replaced by the environment
variable (a value whose variable is unset is dropped, as in Backstage) and ``$${`` escapes;
``{$env: VAR}`` and ``{$file: path}`` objects are supported too. Keys of other Backstage
plugins are ignored. Every error names the key path.
"""

from __future__ import annotations

import ipaddress
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.cors import DEFAULT_METHODS, CorsSettings
from app.durations import parse_duration_seconds
from app.edge import RateLimitSettings
from app.oauth.origins import OriginPattern, parse_origin

M = TypeVar("M", bound=BaseModel)

DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600
DEFAULT_REFRESH_GRACE_SECONDS = 5.0
MIN_TOKEN_EXPIRATION_SECONDS = 600
MAX_TOKEN_EXPIRATION_SECONDS = 86400


class ConfigError(Exception):
    """Raised when the configuration cannot be used; the message names the key path."""


class _EnvTemplate(string.Template):
    # Only ${VAR} is a reference (Backstage); "$$" before "{" escapes. A bare "$x" in a
    # secret stays as it is.
    pattern = r"""
    \$(?:
      (?P<escaped>\$(?=\{)) |
      \{(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*)\} |
      (?P<named>(?!)) |
      (?P<invalid>(?!))
    )
    """  # type: ignore[assignment]


class _Unset:
    pass


_UNSET = _Unset()


def _substitute(value: Any, env: Mapping[str, str], base_dir: Path, path: str) -> Any:
    if isinstance(value, str):
        try:
            return _EnvTemplate(value).substitute(env)
        except KeyError:
            return _UNSET
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            return env.get(str(value["$env"]), _UNSET)
        if set(value) == {"$file"}:
            file = base_dir / str(value["$file"])
            try:
                return file.read_text()
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read $file {file}: {exc.strerror}") from exc
        out = {}
        for key, item in value.items():
            sub = _substitute(item, env, base_dir, f"{path}.{key}" if path else str(key))
            if sub is not _UNSET:
                out[str(key)] = sub
        return out
    if isinstance(value, list):
        items = [_substitute(v, env, base_dir, f"{path}[{i}]") for i, v in enumerate(value)]
        return [v for v in items if v is not _UNSET]
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``APP_CONFIG_backend_baseUrl=...``; values are JSON when they parse as JSON."""
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith("APP_CONFIG_"):
            continue
        keys = name[len("APP_CONFIG_") :].split("_")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


def load_config(paths: Sequence[Path], env: Mapping[str, str]) -> dict[str, Any]:
    """Read, merge and substitute config files.

    Raises:
        ConfigError: unreadable or invalid YAML, unreadable ``$file``.
    """
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        merged = deep_merge(merged, _substitute(doc, env, path.parent, ""))
    return deep_merge(merged, _env_overrides(env))


# -- validation ----------------------------------------------------------------------


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        full = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{full or '(top level)'}: {msg}")
    return "; ".join(lines)


def validate_model(model: type[M], data: Any, path: str) -> M:
    """Validate one config subtree.

    Raises:
        ConfigError: naming each failing key path.
    """
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path)) from exc


def _http_url(value: str) -> str:
    if parse_origin(value) is None:
        raise ValueError(f"'{value}' is not an absolute http(s) URL")
    return value.rstrip("/")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _AppConfig(_Lenient):
    baseUrl: str

    _check_url = field_validator("baseUrl")(_http_url)


class _Listen(_Lenient):
    host: str = ""
    port: int = Field(7007, ge=0, le=65535)


def _string_list(value: Any) -> list[str]:
    """Backstage accepts a string, a comma-separated string or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("must be a string or a list of strings")


class _CorsConfig(_Lenient):
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
        _string_list(value)
        return value

    def settings(self) -> CorsSettings:
        return CorsSettings(
            origins=tuple([self.origin] if isinstance(self.origin, str) else self.origin),
            methods=tuple(_string_list(self.methods)) or DEFAULT_METHODS,
            credentials=self.credentials,
            allowed_headers=tuple(_string_list(self.allowedHeaders)),
            exposed_headers=tuple(_string_list(self.exposedHeaders)),
            max_age_seconds=self.maxAge,
        )


class _RateLimitConfig(_Lenient):
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


class _BackendConfig(_Lenient):
    baseUrl: str
    listen: _Listen = Field(default_factory=lambda: _Listen())
    cors: _CorsConfig | None = None
    # Backstage's shape: `true`, or options; `plugin.auth` options win for this server.
    rateLimit: bool | _RateLimitConfig | dict[str, Any] | None = None
    # Ours: proxies whose X-Forwarded-* headers are honoured (addresses or CIDRs).
    trustedProxies: list[str] = Field(default_factory=list)

    @field_validator("trustedProxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("rateLimit", mode="before")
    @classmethod
    def _rate_limit(cls, value: Any) -> Any:
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


class _SessionConfig(_Lenient):
    secret: str | None = Field(None, min_length=1)
    # Ours: secrets that still decrypt during a rotation.
    previousSecrets: list[str] = Field(default_factory=list)
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


class _StaticKeysConfig(_Lenient):
    keys: list[dict[str, Any]] = Field(default_factory=list)


class _KeyStoreConfig(_Lenient):
    provider: Literal["database", "memory", "static"] = "database"
    static: _StaticKeysConfig | None = None


class _AuthConfig(_Lenient):
    environment: str = "development"
    session: _SessionConfig = Field(default_factory=lambda: _SessionConfig())
    providers: dict[str, Any] = Field(default_factory=dict)
    experimentalExtraAllowedOrigins: list[str] = Field(default_factory=list)
    backstageTokenExpiration: Any = None
    identityTokenAlgorithm: str = "ES256"
    keyStore: _KeyStoreConfig = Field(default_factory=lambda: _KeyStoreConfig())
    omitIdentityTokenOwnershipClaim: bool = True

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


class _RootConfig(_Lenient):
    app: _AppConfig
    backend: _BackendConfig
    auth: _AuthConfig = Field(default_factory=_AuthConfig)


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
    rate_limit: RateLimitSettings | None = None
    trusted_proxies: tuple[str, ...] = ()
    refresh_coordination: str | None = None
    key_store_provider: str = "database"
    static_keys: tuple[dict[str, Any], ...] = ()
    # backend.database as written (None when absent): read by app.db.
    database: Mapping[str, Any] | None = None
    # The whole merged config, for sections read elsewhere (backend.cors, catalog, ...).
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def auth_base_url(self) -> str:
        """``iss`` of our tokens, the callback base: ``<backend.baseUrl>/api/auth``."""
        return f"{self.backend_base_url}/api/auth"


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
    root = validate_model(_RootConfig, raw, "")
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
        providers=auth.providers,
        extra_allowed_origins=tuple(auth.experimentalExtraAllowedOrigins),
        token_expiration_seconds=expiration,
        identity_token_algorithm=auth.identityTokenAlgorithm,
        omit_ownership_claim=auth.omitIdentityTokenOwnershipClaim,
        cors=root.backend.cors.settings() if root.backend.cors else None,
        rate_limit=root.backend.rate_limit(),
        refresh_coordination=auth.session.refreshCoordination,
        trusted_proxies=tuple(root.backend.trustedProxies),
        key_store_provider=auth.keyStore.provider,
        static_keys=tuple(auth.keyStore.static.keys if auth.keyStore.static else ()),
        database=_database_config(raw),
        refresh_grace_seconds=(
            parse_duration_seconds(auth.session.refreshGracePeriod)
            if auth.session.refreshGracePeriod is not None
            else DEFAULT_REFRESH_GRACE_SECONDS
        ),
        raw=dict(raw),
    )
