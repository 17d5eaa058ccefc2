"""app.config.session_secret: weak secrets are refused outside development and named by
check-config (issue 15, item 9)."""

from __future__ import annotations

from typing import Any

import pytest

from app.config.loader import deep_merge
from app.config.session_secret import secret_weakness, server_secrets
from app.config.settings import read_settings
from app.config.validation import ConfigError

BASE: dict[str, Any] = {
    "app": {"baseUrl": "http://localhost:3000"},
    "backend": {"baseUrl": "http://localhost:7007"},
}
STRONG = "kP3v9QxN2m-Rt8Yw_Lz4Hs7Jb1Fd6Gc0Ae5Ui"


def _settings(session: dict[str, Any]) -> Any:
    return read_settings(deep_merge(BASE, {"auth": {"session": session}}))


@pytest.mark.parametrize(
    ("session", "key"),
    [
        ({"secret": "backstage"}, "auth.session.secret"),
        ({"secret": "x" * 31}, "auth.session.secret"),
        ({"secret": STRONG, "previousSecrets": [STRONG, "old"]}, "auth.session.previousSecrets.1"),
    ],
)
def test_short_secrets_are_refused_outside_development(session: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: \d+ characters; outside development"):
        server_secrets(_settings(session), development=False, data_dir=None, keeps_sessions=True)


def test_short_secrets_pass_in_development_and_long_ones_in_production() -> None:
    weak = _settings({"secret": "backstage", "previousSecrets": ["old"]})
    assert (
        server_secrets(weak, development=True, data_dir=None, keeps_sessions=True).current
        == "backstage"
    )
    strong = _settings({"secret": STRONG, "previousSecrets": ["y" * 32]})
    assert server_secrets(
        strong, development=False, data_dir=None, keeps_sessions=True
    ).previous == ("y" * 32,)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("backstage", "shorter than 32"),
        ("backstagebackstagebackstagebackstage", "distinct characters"),
        ("CorrectHorseBatteryStapleAndMoreWords", "letters only"),
        ("1234567890123456789012345678901234567", "bits"),
    ],
)
def test_guessable_secrets_are_named(secret: str, reason: str) -> None:
    weakness = secret_weakness(secret)
    assert weakness is not None and reason in weakness


@pytest.mark.parametrize(
    "secret",
    [
        STRONG,
        "9f86d081884c7d659a2feaa0c55ad015",  # openssl rand -hex 16
        "q1fGzS3x0yOb7rH2kLw9TcVn+4eUjPaM5dRiYt6sBoE=",  # openssl rand -base64 32
    ],
)
def test_random_secrets_pass(secret: str) -> None:
    assert secret_weakness(secret) is None
