"""``auth.clientIdMetadataDocuments`` (and its deprecated name
``auth.experimentalClientIdMetadataDocuments``): which Client ID Metadata Documents the
authorization server accepts (Backstage's ``OidcService.getCimdConfig``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.config.url_patterns import url_matcher
from app.config.validation import ConfigError

CONFIG_KEY = "clientIdMetadataDocuments"
DEPRECATED_KEY = "experimentalClientIdMetadataDocuments"
CLI_DOCUMENT_PATH = "/.well-known/oauth-client/cli.json"

# Backstage's defaults: the MCP clients that publish a document.
DEFAULT_CLIENT_ID_PATTERNS = (
    "https://claude.ai/*",
    "https://vscode.dev/*",
    "https://chatgpt.com/oauth/codex/*/client.json",
    "https://cursor.com/oauth/mcp-client.json",
)
LOOPBACK_REDIRECT_PATTERNS = (
    "http://localhost:*/*",
    "http://localhost/*",
    "http://127.0.0.1:*/*",
    "http://127.0.0.1/*",
    "http://[::1]:*/*",
    "http://[::1]/*",
)


@dataclass(frozen=True)
class ClientMetadataSettings:
    enabled: bool = False
    # Without the CLI's own document, which is always allowed (it depends on the base URL).
    client_id_patterns: tuple[str, ...] = DEFAULT_CLIENT_ID_PATTERNS
    redirect_uri_patterns: tuple[str, ...] = LOOPBACK_REDIRECT_PATTERNS
    deprecated_key: bool = False

    def client_id_patterns_for(self, auth_base_url: str) -> tuple[str, ...]:
        cli = cli_client_id(auth_base_url)
        return tuple(dict.fromkeys((*self.client_id_patterns, cli)))


def cli_client_id(auth_base_url: str) -> str:
    return f"{auth_base_url}{CLI_DOCUMENT_PATH}"


def _patterns(config: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}.{key}: must be a list of strings")
    for pattern in value:
        url_matcher(pattern)  # a pattern that cannot match is refused at start, not per call
    return tuple(value)


def read_client_metadata(auth: Mapping[str, Any]) -> ClientMetadataSettings:
    """Raises ConfigError. The current key wins when both are present, as in Backstage."""
    deprecated = CONFIG_KEY not in auth and DEPRECATED_KEY in auth
    key = DEPRECATED_KEY if deprecated else CONFIG_KEY
    path = f"auth.{key}"
    config = auth.get(key)
    if config is None:
        return ClientMetadataSettings()
    if not isinstance(config, Mapping):
        raise ConfigError(f"{path}: must be a mapping")
    enabled = config.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}.enabled: must be a boolean")
    ids = _patterns(config, "allowedClientIdPatterns", path)
    redirects = _patterns(config, "allowedRedirectUriPatterns", path)
    return ClientMetadataSettings(
        enabled=enabled,
        client_id_patterns=DEFAULT_CLIENT_ID_PATTERNS if ids is None else ids,
        redirect_uri_patterns=LOOPBACK_REDIRECT_PATTERNS if redirects is None else redirects,
        deprecated_key=deprecated,
    )
