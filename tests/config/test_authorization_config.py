"""auth.staticClients, auth.experimentalRefreshToken, the removed dynamic client
registration and backend.auth.externalAccess: Backstage's start-up errors."""

from __future__ import annotations

from typing import Any

import pytest

from app.config.authorization import read_authorization
from app.config.validation import ConfigError


def _auth(**auth: Any) -> dict[str, Any]:
    return {"auth": auth}


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        (
            [{"clientId": "https://x.example", "redirectUris": ["http://a/"]}],
            "Invalid client ID 'https://x.example' in auth.staticClients, "
            "client IDs must not be URLs",
        ),
        (
            [{"clientId": "a", "redirectUris": ["http://a/"]}] * 2,
            "Duplicate client ID 'a' in auth.staticClients",
        ),
        (
            [{"clientId": "a", "redirectUris": []}],
            "Client 'a' in auth.staticClients must have at least one redirect URI",
        ),
        (
            [{"clientId": "a", "redirectUris": ["not a url"]}],
            "Invalid redirect URI 'not a url' for client 'a' in auth.staticClients",
        ),
    ],
)
def test_static_client_errors(clients: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_authorization(_auth(staticClients=clients))
    assert str(info.value) == message


def test_static_client_defaults() -> None:
    settings = read_authorization(
        _auth(staticClients=[{"clientId": "cli", "redirectUris": ["http://127.0.0.1/cb"]}])
    )
    (client,) = settings.static_clients
    assert (client.client_name, client.client_secret) == ("cli", None)
    assert settings.enabled


@pytest.mark.parametrize(
    ("refresh", "message"),
    [
        ({"tokenLifetime": {"days": 0}}, "tokenLifetime must be a positive duration"),
        (
            {"tokenLifetime": {"days": 400}},
            "maxRotationLifetime must be greater than tokenLifetime",
        ),
        ({"maxTokensPerUser": 0}, "maxTokensPerUser must be a positive number"),
    ],
)
def test_refresh_token_errors(refresh: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_authorization(_auth(experimentalRefreshToken={"enabled": True, **refresh}))


def test_refresh_token_defaults() -> None:
    refresh = read_authorization(_auth(experimentalRefreshToken={"enabled": True})).refresh_tokens
    assert refresh.token_lifetime_seconds == 30 * 86400
    assert refresh.max_tokens_per_user == 20
    assert not refresh.disable_catalog_presence_check


def test_dynamic_client_registration_is_a_warning() -> None:
    settings = read_authorization(_auth(experimentalDynamicClientRegistration={"enabled": True}))
    assert "removed dynamic client registration" in settings.warnings[0]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "static", "options": {"token": "short", "subject": "s"}}, "at least 8"),
        ({"type": "static", "options": {"token": "has space in", "subject": "s"}}, "non-space"),
        ({"type": "legacy", "options": {"secret": "", "subject": "s"}}, "valid base64"),
        ({"type": "other"}, "unknown external access type"),
    ],
)
def test_external_access_errors(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_authorization({"backend": {"auth": {"externalAccess": [entry]}}})
