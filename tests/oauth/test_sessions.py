"""Sealed refresh sessions (app/oauth/sessions.py)."""

from __future__ import annotations

import base64

import pytest

from app.core.errors import AuthenticationError
from app.oauth.sessions import RefreshSession, SessionCodec

SESSION = RefreshSession(
    refresh_token="idp-refresh-token-123",
    provider_id="oidc",
    env="development",
    scope="openid email",
    issued_at=1_700_000_000,
    id_token="header.payload.signature",
)
NAME = "oidc-refresh-token"


def _open(codec: SessionCodec, value: str, **overrides: str) -> RefreshSession:
    args = {"cookie_name": NAME, "provider_id": "oidc", "env": "development", **overrides}
    return codec.open(value, **args)


def test_round_trip() -> None:
    codec = SessionCodec(["secret"])
    assert _open(codec, codec.seal(SESSION, cookie_name=NAME)) == SESSION


def test_the_cookie_never_holds_the_raw_token() -> None:
    value = SessionCodec(["secret"]).seal(SESSION, cookie_name=NAME)
    decoded = b"".join(
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in value.split(".")
    )
    assert b"idp-refresh-token-123" not in decoded
    assert b"header.payload.signature" not in decoded
    header = value.split(".")[0]
    assert b'"enc":"A256GCM"' in base64.urlsafe_b64decode(header + "==")


def test_each_seal_is_fresh() -> None:
    codec = SessionCodec(["secret"])
    assert codec.seal(SESSION, cookie_name=NAME) != codec.seal(SESSION, cookie_name=NAME)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # tag
        lambda v: ".".join(p if i != 3 else p[::-1] for i, p in enumerate(v.split("."))),
        lambda v: "not-a-jwe",
        lambda v: "",
        lambda v: v + ".",
    ],
)
def test_tampered_values_are_refused(tamper: object) -> None:
    codec = SessionCodec(["secret"])
    value = codec.seal(SESSION, cookie_name=NAME)
    with pytest.raises(AuthenticationError, match="Invalid session cookie"):
        _open(codec, tamper(value))  # type: ignore[operator]


@pytest.mark.parametrize(
    "overrides",
    [
        {"cookie_name": "oidc-granted-scope"},
        {"cookie_name": "github-refresh-token", "provider_id": "github"},
        {"provider_id": "google"},
        {"env": "production"},
    ],
)
def test_a_value_cannot_move_to_another_cookie_provider_or_env(overrides: dict[str, str]) -> None:
    codec = SessionCodec(["secret"])
    value = codec.seal(SESSION, cookie_name=NAME)
    with pytest.raises(AuthenticationError):
        _open(codec, value, **overrides)


def test_previous_secrets_keep_opening_during_a_rotation() -> None:
    old = SessionCodec(["old-secret"]).seal(SESSION, cookie_name=NAME)
    rotated = SessionCodec(["new-secret", "old-secret"])
    assert _open(rotated, old) == SESSION
    # New cookies are sealed with the new secret only.
    fresh = rotated.seal(SESSION, cookie_name=NAME)
    with pytest.raises(AuthenticationError):
        _open(SessionCodec(["old-secret"]), fresh)


def test_a_foreign_secret_is_refused() -> None:
    value = SessionCodec(["someone-else"]).seal(SESSION, cookie_name=NAME)
    with pytest.raises(AuthenticationError):
        _open(SessionCodec(["secret"]), value)


def test_the_session_id_is_sealed_and_a_legacy_session_has_none() -> None:
    codec = SessionCodec(["secret"])
    with_id = RefreshSession(**{**SESSION.__dict__, "session_id": "sid-abc"})
    assert _open(codec, codec.seal(with_id, cookie_name=NAME)).session_id == "sid-abc"
    # Sealed before sessions had ids: no "sid" in the payload.
    legacy = codec.seal_json(
        {"rt": "rt", "pid": "oidc", "env": "development", "scp": "openid", "iat": 1}, name=NAME
    )
    assert _open(codec, legacy).session_id is None
