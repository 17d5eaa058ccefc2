"""app.config.session_secret: who needs ``auth.session.secret`` follows from the kinds of
the configured providers (OAuth providers keep sessions, proxy providers keep none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config.session_secret import server_secrets
from app.config.settings import read_settings
from app.config.validation import ConfigError
from app.core.clock import SystemClock
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.wiring import Dependencies

BASE: dict[str, Any] = {
    "app": {"baseUrl": "https://backstage.example.com"},
    "backend": {"baseUrl": "https://backstage.example.com"},
}


def _settings(providers: dict[str, Any]) -> Any:
    return read_settings({**BASE, "auth": {"providers": providers}})


def test_production_without_a_secret_is_refused_when_a_provider_keeps_sessions() -> None:
    with pytest.raises(ConfigError, match=r"^auth\.session\.secret: required outside"):
        server_secrets(_settings({}), development=False, data_dir=None, keeps_sessions=True)


def test_production_without_a_secret_is_fine_when_no_provider_keeps_sessions() -> None:
    secrets = server_secrets(_settings({}), development=False, data_dir=None, keeps_sessions=False)
    # A process-local secret: nothing it protects outlives the process.
    assert len(secrets.current) >= 32


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    first = server_secrets(_settings({}), development=True, data_dir=tmp_path, keeps_sessions=True)
    again = server_secrets(_settings({}), development=True, data_dir=tmp_path, keeps_sessions=True)
    assert first.current == again.current
    assert (tmp_path / "session-secret").stat().st_mode & 0o777 == 0o600


def test_a_proxy_only_production_config_starts_without_a_session_secret() -> None:
    # awsalb alone, as the README promises: only OAuth providers need the secret.
    settings = _settings(
        {
            "awsalb": {
                "issuer": "https://example.okta.com/oauth2/default",
                "region": "eu-west-1",
                "signIn": {"resolvers": [{"resolver": "emailMatchingUserEntityProfileEmail"}]},
            }
        }
    )
    create_app(settings, development=False, deps=Dependencies(clock=SystemClock()))


def test_an_oauth_provider_in_production_still_needs_the_secret() -> None:
    settings = _settings(
        {
            "awsalb": {
                "issuer": "https://example.okta.com/oauth2/default",
                "region": "eu-west-1",
                "signIn": {"resolvers": [{"resolver": "emailMatchingUserEntityProfileEmail"}]},
            },
            "github": {"production": {"clientId": "id", "clientSecret": "secret"}},
        }
    )
    assert REGISTRY["github"].kind == "oauth"
    with pytest.raises(ConfigError, match=r"^auth\.session\.secret: required outside"):
        create_app(settings, development=False, deps=Dependencies(clock=SystemClock()))
