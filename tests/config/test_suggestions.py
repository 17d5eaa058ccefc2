"""Config mistakes that used to pass silently or read as pydantic internals: a misspelled
key gets "did you mean", an unset ${VAR} is named, a missing block names its key, a bad
rateLimit says what it takes, a misspelled provider id gets its nearest known id; keys of
other Backstage plugins stay silent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from app.config.loader import explain_unset, load_config
from app.config.settings import read_settings
from app.config.suggest import closest
from app.config.validation import ConfigError, validate_model
from app.providers.github import GithubSettings
from tests.support.cli_server import run_cli, write_config

BASE = {
    "app": {"baseUrl": "https://b.example.com"},
    "backend": {"baseUrl": "https://b.example.com"},
}


def _with(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {k: dict(v) for k, v in BASE.items()}
    for name, value in sections.items():
        raw[name] = {**raw.get(name, {}), **value}
    return raw


def test_a_misspelled_provider_key_suggests_the_known_one() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_model(
            GithubSettings, {"clientID": "id", "clientSecret": "s"}, "auth.providers.github.p"
        )
    assert "auth.providers.github.p.clientId: Field required" in str(caught.value)
    assert "auth.providers.github.p.clientID: unknown key; did you mean clientId?" in str(
        caught.value
    )


def test_a_misspelled_auth_or_backend_key_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.config"):
        read_settings(_with(auth={"sesion": {"secret": "x" * 40}}, backend={"rateLimt": True}))
    assert [r.getMessage() for r in caplog.records] == [
        "backend.rateLimt: unknown key; did you mean rateLimit?",
        "auth.sesion: unknown key; did you mean session?",
    ]


def test_keys_of_other_plugins_stay_silent(caplog: pytest.LogCaptureFixture) -> None:
    raw = _with(
        backend={"cache": {"store": "memory"}, "csp": {}, "reading": {}, "database": {}},
        auth={"catalog": {}, "devIdentityProvider": {}, "staticClients": []},
        catalog={"locations": []},
        techdocs={"builder": "local"},
    )
    raw["backend"]["auth"] = {"externalAccess": []}
    with caplog.at_level(logging.WARNING, logger="app.config"):
        read_settings(raw)
    assert caplog.records == []


def test_a_missing_app_block_names_app_base_url() -> None:
    with pytest.raises(ConfigError, match=r"^app\.baseUrl: Field required$"):
        read_settings({"backend": {"baseUrl": "https://b.example.com"}})


def test_a_rate_limit_that_is_neither_flag_nor_object_says_what_it_takes() -> None:
    with pytest.raises(ConfigError) as caught:
        read_settings(_with(backend={"rateLimit": "sometimes"}))
    assert str(caught.value) == (
        "backend.rateLimit: must be true, false or an object "
        "{window, incomingRequestLimit, ipAllowList}, not 'sometimes'"
    )


def test_an_unset_variable_is_named_when_its_key_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "app-config.yaml"
    path.write_text(
        "auth:\n  providers:\n    github:\n      production:\n"
        "        clientId: ${GITHUB_CLIENT_ID}\n        clientSecret: ${GITHUB_CLIENT_SECRET}\n"
    )
    unset: dict[str, str] = {}
    raw = load_config([path], {"GITHUB_CLIENT_ID": "id"}, unset)
    assert unset == {"auth.providers.github.production.clientSecret": "GITHUB_CLIENT_SECRET"}
    with pytest.raises(ConfigError) as caught:
        validate_model(
            GithubSettings,
            raw["auth"]["providers"]["github"]["production"],
            "auth.providers.github.production",
        )
    assert explain_unset(str(caught.value), unset) == (
        "auth.providers.github.production.clientSecret: Field required; "
        "auth.providers.github.production.clientSecret was dropped: its environment variable "
        "GITHUB_CLIENT_SECRET is not set"
    )
    # A message about other keys is left alone.
    assert explain_unset("backend.baseUrl: Field required", unset) == (
        "backend.baseUrl: Field required"
    )


def test_the_cli_names_the_unset_variable(tmp_path: Path) -> None:
    config = _with(
        auth={
            "session": {"secret": "x" * 40},
            "providers": {
                "github": {
                    "production": {"clientId": "id", "clientSecret": "${GITHUB_CLIENT_SECRET}"}
                }
            },
        }
    )
    path = write_config(tmp_path / "app-config.yaml", config)
    result = run_cli("check-config", "--production", "--config", str(path))
    assert result.returncode == 2
    assert "its environment variable GITHUB_CLIENT_SECRET is not set" in result.stderr


def test_a_misspelled_provider_id_suggests_the_known_one(tmp_path: Path) -> None:
    assert closest("githib", ["github", "gitlab", "google"]) == "github"
    assert closest("myCompanyIdp", ["github", "gitlab", "google"]) is None
    config = _with(auth={"providers": {"githib": {}, "guest": {}}})
    path = write_config(tmp_path / "app-config.yaml", config)
    result = run_cli("check-config", "--config", str(path))
    assert "auth.providers.githib: not implemented" in result.stdout
    assert "(did you mean github?)" in result.stdout, result.stdout + result.stderr
