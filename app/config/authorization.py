"""Config of Backstage as an OAuth authorization server for CLI and MCP clients.

``auth.staticClients``, ``auth.experimentalRefreshToken``, the removed
``auth.experimentalDynamicClientRegistration`` (a warning) and the service callers of
``backend.auth.externalAccess`` (external_access.py). Errors carry Backstage's start-up messages
(``OidcService.readStaticClients``, ``OfflineAccessService.create``, the external token
handlers of ``@backstage/backend-defaults``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.config.client_metadata import (
    DEPRECATED_KEY,
    ClientMetadataSettings,
    read_client_metadata,
)
from app.config.external_access import ExternalAccess, read_external_access
from app.config.validation import ConfigError, optional_mapping
from app.core.durations import parse_duration_seconds

DEFAULT_TOKEN_LIFETIME_SECONDS = 30 * 86400
DEFAULT_MAX_ROTATION_LIFETIME_SECONDS = int(365.25 * 86400)
DEFAULT_MAX_TOKENS_PER_USER = 20

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# WHATWG's special schemes need a host; any other scheme followed by anything parses.
_SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp", "file"})


def can_parse_url(value: str) -> bool:
    """``URL.canParse`` closely enough for config checks: a scheme, and a host for the
    special schemes."""
    if not _SCHEME.match(value):
        return False
    scheme = value.split(":", 1)[0].lower()
    if scheme in _SPECIAL and scheme != "file":
        try:
            return bool(urlsplit(value).hostname or value.split(":", 1)[1].strip("/"))
        except ValueError:
            return False
    return True


@dataclass(frozen=True)
class StaticClient:
    client_id: str
    client_name: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class RefreshTokenSettings:
    enabled: bool = False
    token_lifetime_seconds: int = DEFAULT_TOKEN_LIFETIME_SECONDS
    max_rotation_lifetime_seconds: int = DEFAULT_MAX_ROTATION_LIFETIME_SECONDS
    max_tokens_per_user: int = DEFAULT_MAX_TOKENS_PER_USER
    disable_catalog_presence_check: bool = False


@dataclass(frozen=True)
class AuthorizationSettings:
    static_clients: tuple[StaticClient, ...] = ()
    refresh_tokens: RefreshTokenSettings = RefreshTokenSettings()
    external_access: tuple[ExternalAccess, ...] = ()
    client_metadata: ClientMetadataSettings = ClientMetadataSettings()
    # Start-up warnings (logged, and listed by check-config).
    warnings: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """The authorization routes are mounted: static clients, or Client ID Metadata
        Documents."""
        return bool(self.static_clients) or self.client_metadata.enabled


def _string(value: Any, path: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: must be a string")
    return value


def read_static_clients(value: Any) -> tuple[StaticClient, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("auth.staticClients: must be a list")
    clients: dict[str, StaticClient] = {}
    for index, item in enumerate(value):
        path = f"auth.staticClients[{index}]"
        entry = optional_mapping(item, path)
        client_id = _string(entry.get("clientId"), f"{path}.clientId")
        assert client_id is not None
        if can_parse_url(client_id):
            raise ConfigError(
                f"Invalid client ID '{client_id}' in auth.staticClients, "
                "client IDs must not be URLs"
            )
        if client_id in clients:
            raise ConfigError(f"Duplicate client ID '{client_id}' in auth.staticClients")
        uris = entry.get("redirectUris")
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ConfigError(f"{path}.redirectUris: must be a list of strings")
        if not uris:
            raise ConfigError(
                f"Client '{client_id}' in auth.staticClients must have at least one redirect URI"
            )
        for uri in uris:
            if not can_parse_url(uri):
                raise ConfigError(
                    f"Invalid redirect URI '{uri}' for client '{client_id}' in auth.staticClients"
                )
        secret = _string(entry.get("clientSecret"), f"{path}.clientSecret", optional=True)
        name = _string(entry.get("clientName"), f"{path}.clientName", optional=True)
        clients[client_id] = StaticClient(
            client_id=client_id,
            client_name=name or client_id,
            client_secret=secret or None,
            redirect_uris=tuple(uris),
        )
    return tuple(clients.values())


def _duration(config: Mapping[str, Any], key: str, default: int) -> int:
    if key not in config:
        return default
    try:
        return int(parse_duration_seconds(config[key]))
    except ValueError as exc:
        raise ConfigError(f"auth.experimentalRefreshToken.{key}: {exc}") from exc


def read_refresh_tokens(value: Any) -> RefreshTokenSettings:
    config = optional_mapping(value, "auth.experimentalRefreshToken")
    enabled = config.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError("auth.experimentalRefreshToken.enabled: must be a boolean")
    lifetime = _duration(config, "tokenLifetime", DEFAULT_TOKEN_LIFETIME_SECONDS)
    rotation = _duration(config, "maxRotationLifetime", DEFAULT_MAX_ROTATION_LIFETIME_SECONDS)
    prefix = "auth.experimentalRefreshToken"
    if lifetime <= 0:
        raise ConfigError(f"{prefix}.tokenLifetime must be a positive duration")
    if rotation <= 0:
        raise ConfigError(f"{prefix}.maxRotationLifetime must be a positive duration")
    if rotation <= lifetime:
        raise ConfigError(f"{prefix}.maxRotationLifetime must be greater than tokenLifetime")
    max_tokens = config.get("maxTokensPerUser", DEFAULT_MAX_TOKENS_PER_USER)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise ConfigError(f"{prefix}.maxTokensPerUser: must be a number")
    if max_tokens <= 0:
        raise ConfigError(f"{prefix}.maxTokensPerUser must be a positive number")
    disable = config.get("dangerouslyDisableCatalogPresenceCheck", False)
    if not isinstance(disable, bool):
        raise ConfigError(f"{prefix}.dangerouslyDisableCatalogPresenceCheck: must be a boolean")
    return RefreshTokenSettings(
        enabled=enabled,
        token_lifetime_seconds=lifetime,
        max_rotation_lifetime_seconds=rotation,
        max_tokens_per_user=max_tokens,
        disable_catalog_presence_check=disable,
    )


def read_authorization(raw: Mapping[str, Any]) -> AuthorizationSettings:
    """Raises ConfigError with Backstage's start-up message."""
    auth = optional_mapping(raw.get("auth"), "auth")
    warnings: list[str] = []
    if "experimentalDynamicClientRegistration" in auth:
        warnings.append(
            "auth.experimentalDynamicClientRegistration is no longer supported: Backstage "
            "removed dynamic client registration in 0.31; use auth.staticClients or Client "
            "ID Metadata Documents (auth.clientIdMetadataDocuments) instead"
        )
    client_metadata = read_client_metadata(auth)
    if client_metadata.deprecated_key:
        warnings.append(
            f"auth.{DEPRECATED_KEY} is deprecated; use auth.clientIdMetadataDocuments instead"
        )
    return AuthorizationSettings(
        static_clients=read_static_clients(auth.get("staticClients")),
        client_metadata=client_metadata,
        refresh_tokens=read_refresh_tokens(auth.get("experimentalRefreshToken")),
        external_access=read_external_access(raw.get("backend")),
        warnings=tuple(warnings),
    )
