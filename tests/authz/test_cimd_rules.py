"""Client ID Metadata Document rules: the client id URL, the patterns, the document, the
redirect URIs (Backstage's messages)."""

from __future__ import annotations

from typing import Any

import pytest

from app.authz.cimd_rules import (
    check_redirect_uri,
    registered_redirect_uri,
    validate_client_id_url,
    validate_metadata,
)
from app.config.client_metadata import LOOPBACK_REDIRECT_PATTERNS, read_client_metadata
from app.config.url_patterns import is_exact, url_matcher, url_parts
from app.config.validation import ConfigError
from app.core.errors import InputError

ID = "https://mcp.example.com/client.json"


@pytest.mark.parametrize(
    ("client_id", "message"),
    [
        ("https://x.example/a/../b.json", "Invalid client_id: path must not contain dot segments"),
        ("https://x.example/./b.json", "Invalid client_id: path must not contain dot segments"),
        ("https://x.example/a/..", "Invalid client_id: path must not contain dot segments"),
        ("https://x.example/a/%2E%2e/b", "Invalid client_id: path must not contain dot segments"),
        ("not a url", "Invalid client_id: not a valid URL"),
        ("https://", "Invalid client_id: not a valid URL"),
        ("https://x.example:port/c", "Invalid client_id: not a valid URL"),
        (
            "http://x.example/c.json",
            "Invalid client_id: must use HTTPS (or HTTP for localhost in development)",
        ),
        (
            "http://localhost/c.json",
            "Invalid client_id: must use HTTPS (or HTTP for localhost in development)",
        ),
        ("ftp://x.example/c.json", "Invalid client_id: must use HTTPS (or HTTP for"),
        ("https://x.example", "Invalid client_id: must have a path component"),
        ("https://x.example/", "Invalid client_id: must have a path component"),
        ("https://x.example/c.json#frag", "Invalid client_id: must not contain a fragment"),
        ("https://u:p@x.example/c.json", "Invalid client_id: must not contain credentials"),
        ("https://u@x.example/c.json", "Invalid client_id: must not contain credentials"),
        ("https://x.example/c.json?a=1", "Invalid client_id: must not contain a query string"),
    ],
)
def test_client_id_url_rules(client_id: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        validate_client_id_url(client_id, development=False)
    assert raised.value.message.startswith(message)


def test_http_on_localhost_only_in_development() -> None:
    assert validate_client_id_url("http://127.0.0.1:9/c.json", development=True).port == 9
    assert validate_client_id_url("http://localhost/c.json", development=True)
    with pytest.raises(InputError, match="must use HTTPS"):
        validate_client_id_url("http://10.0.0.1/c.json", development=True)


@pytest.mark.parametrize(
    ("pattern", "url", "matches"),
    [
        ("https://claude.ai/*", "https://claude.ai/oauth/client.json", True),
        ("https://claude.ai/*", "https://evil.claude.ai/x", False),
        ("https://claude.ai/*", "http://claude.ai/x", False),
        ("https://claude.ai/*", "https://claude.ai:8443/x", False),
        ("https://claude.ai/*", "https://claude.ai:443/x", True),
        ("https://*.example.com/*", "https://a.example.com/c.json", True),
        ("https://*.example.com/*", "https://example.com.evil.io/c.json", False),
        ("https://*.example.com/*", "https://a.example.com.evil.io/x", False),
        (
            "https://chatgpt.com/oauth/codex/*/client.json",
            "https://chatgpt.com/oauth/codex/a/client.json",
            True,
        ),
        (
            "https://chatgpt.com/oauth/codex/*/client.json",
            "https://chatgpt.com/oauth/codex/a/other.json",
            False,
        ),
        (
            "https://cursor.com/oauth/mcp-client.json",
            "https://cursor.com/oauth/mcp-client.json",
            True,
        ),
        (
            "https://cursor.com/oauth/mcp-client.json",
            "https://CURSOR.com/oauth/mcp-client.json",
            True,
        ),
        (
            "https://cursor.com/oauth/mcp-client.json",
            "https://cursor.com/oauth/mcp-client.jsonx",
            False,
        ),
        ("http://localhost:*/*", "http://localhost:5173/cb", True),
        ("http://localhost:*/*", "http://localhost/cb", True),
        ("http://localhost/*", "http://localhost:5173/cb", False),
        ("http://[::1]:*/*", "http://[::1]:8080/cb", True),
        ("*", "ftp://anything/at/all", True),
    ],
)
def test_url_patterns_match_per_component(pattern: str, url: str, matches: bool) -> None:
    parts = url_parts(url)
    assert parts is not None
    assert url_matcher(pattern)(parts) is matches


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("claude.ai/*", "an explicit protocol is required"),
        ("https://[bad/*", "Invalid URL pattern"),
    ],
)
def test_bad_patterns_are_refused_at_start(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_client_metadata(
            {"clientIdMetadataDocuments": {"enabled": True, "allowedClientIdPatterns": [pattern]}}
        )


def test_exact_patterns() -> None:
    assert is_exact("https://cursor.com/oauth/mcp-client.json")
    assert not is_exact("https://claude.ai/*")


def test_config_defaults_alias_and_cli_document() -> None:
    default = read_client_metadata({"clientIdMetadataDocuments": {"enabled": True}})
    base = "https://backstage.example.com/api/auth"
    patterns = default.client_id_patterns_for(base)
    assert patterns[0] == "https://claude.ai/*"
    assert patterns[-1] == f"{base}/.well-known/oauth-client/cli.json"
    assert default.redirect_uri_patterns == LOOPBACK_REDIRECT_PATTERNS
    only = read_client_metadata(
        {"clientIdMetadataDocuments": {"allowedClientIdPatterns": ["https://a.example/c"]}}
    )
    assert not only.enabled
    assert only.client_id_patterns_for(base) == (
        "https://a.example/c",
        f"{base}/.well-known/oauth-client/cli.json",
    )
    alias = read_client_metadata({"experimentalClientIdMetadataDocuments": {"enabled": True}})
    assert alias.enabled and alias.deprecated_key
    both = read_client_metadata(
        {
            "clientIdMetadataDocuments": {"enabled": False},
            "experimentalClientIdMetadataDocuments": {"enabled": True},
        }
    )
    assert not both.enabled


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"enabled": "yes"}, "enabled: must be a boolean"),
        ({"allowedClientIdPatterns": "https://a/*"}, "must be a list of strings"),
        ({"allowedRedirectUriPatterns": [1]}, "must be a list of strings"),
        ("on", "must be a mapping"),
    ],
)
def test_config_types(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_client_metadata({"clientIdMetadataDocuments": value})


def _doc(**fields: Any) -> dict[str, Any]:
    document = {"client_id": ID, "redirect_uris": ["http://127.0.0.1/cb"], **fields}
    return {k: v for k, v in document.items() if v is not None}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            _doc(client_id="https://other.example/client.json"),
            "Client ID mismatch in metadata document",
        ),
        (_doc(client_id=None), "Client ID mismatch in metadata document"),
        (_doc(redirect_uris=[]), "Metadata must include at least one redirect_uri"),
        (
            _doc(redirect_uris="http://127.0.0.1/cb"),
            "Metadata must include at least one redirect_uri",
        ),
        (_doc(redirect_uris=None), "Metadata must include at least one redirect_uri"),
        (_doc(redirect_uris=["not a uri"]), "Invalid redirect_uri in metadata: not a uri"),
        (_doc(redirect_uris=[7]), "Invalid redirect_uri in metadata: 7"),
        (_doc(client_secret="s"), "Client metadata must not contain client_secret"),
        (_doc(client_secret_expires_at=0), "Client metadata must not contain client_secret"),
        (_doc(token_endpoint_auth_method="client_secret_basic"), "forbidden auth method"),
        (_doc(token_endpoint_auth_method="client_secret_post"), "forbidden auth method"),
        (_doc(token_endpoint_auth_method="client_secret_jwt"), "forbidden auth method"),
    ],
)
def test_document_rules(document: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as raised:
        validate_metadata(document, ID)
    assert raised.value.message == message or message in raised.value.message


def test_a_good_document_and_its_name() -> None:
    assert validate_metadata(_doc(client_name="Claude"), ID).client_name == "Claude"
    assert validate_metadata(_doc(client_name=""), ID).client_name == ID
    assert validate_metadata(_doc(token_endpoint_auth_method="none"), ID).redirect_uris == (
        "http://127.0.0.1/cb",
    )


LOOPBACK = [url_matcher(p) for p in LOOPBACK_REDIRECT_PATTERNS]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://evil.example/cb", "Invalid redirect_uri 'https://evil.example/cb'"),
        ("http://user:pw@127.0.0.1:5/cb", "Invalid redirect_uri 'http://127.0.0.1:5/cb'"),
        ("http://10.0.0.1/cb", "Invalid redirect_uri 'http://10.0.0.1/cb'"),
    ],
)
def test_redirect_uri_must_match_an_allowed_pattern(uri: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        check_redirect_uri(uri, LOOPBACK)
    assert raised.value.message == message


def test_registered_redirect_uris_loopback_any_port() -> None:
    registered = ["http://127.0.0.1/callback", "https://app.example/cb"]
    assert registered_redirect_uri("http://127.0.0.1:51234/callback", registered)
    assert not registered_redirect_uri("http://127.0.0.1:51234/other", registered)
    assert not registered_redirect_uri("http://localhost:51234/callback", registered)
    assert registered_redirect_uri("https://app.example/cb", registered)
    assert not registered_redirect_uri("https://app.example/cb2", registered)
