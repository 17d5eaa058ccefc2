"""Refresh-token hashes: HMAC-SHA256 keyed from ``auth.session.secret`` (previous secrets
still verify), and hashes Backstage wrote with scrypt still verify."""

from __future__ import annotations

from app.authz.errors import from_error
from app.authz.refresh_tokens import TokenHasher, derive_key
from app.core.errors import ServiceUnavailableError

# Written by Backstage 0.31's own lib/refreshToken (generateRefreshToken) on the peer.
BACKSTAGE_TOKEN = "3b1c5a55-0f3c-4a8e-9d55-0c6c8a1e2f10.USw0k5ms8rkPMHKZyNBcJNfquVMnytZnHF-y38G7IZE"
BACKSTAGE_HASH = (
    "71uS0Ne9r7YoEPqRQckhHA==.7zWOs232Y2blS6fpQi6eNu6E6VvLdX4YPH3Knrq25pjmQN1XZvtxugWg2K3dWhbuPzPZ"
    "VAXEe7HXBeXQAYIzpw=="
)


def test_hashes_are_keyed_by_the_session_secret() -> None:
    hasher = TokenHasher([derive_key("current-secret")])
    token, stored = hasher.new_token("session-id")
    assert token.startswith("session-id.") and token not in stored
    assert stored.startswith("hmac-sha256:")
    assert hasher.matches(token, stored)
    assert not hasher.matches(token + "x", stored)
    # A database leak without the secret: another key cannot tell the token.
    assert not TokenHasher([derive_key("another-secret")]).matches(token, stored)
    # After a rotation of the secret, the previous one still verifies.
    rotated = TokenHasher([derive_key("next-secret"), derive_key("current-secret")])
    assert rotated.matches(token, stored)
    assert rotated.hash(token) != stored


def test_backstage_scrypt_hashes_still_verify() -> None:
    hasher = TokenHasher([derive_key("any-secret")])
    assert hasher.matches(BACKSTAGE_TOKEN, BACKSTAGE_HASH)
    assert not hasher.matches(BACKSTAGE_TOKEN[:-1] + "A", BACKSTAGE_HASH)
    assert not hasher.matches(BACKSTAGE_TOKEN, "not-base64!.also-not")
    assert not hasher.matches(BACKSTAGE_TOKEN, None)


def test_an_unreachable_database_is_temporarily_unavailable() -> None:
    error = from_error(ServiceUnavailableError("Offline session store unavailable: down"))
    assert (error.status, error.code) == (503, "temporarily_unavailable")
