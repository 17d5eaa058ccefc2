"""Refresh tokens: ``<offline session id>.<256 random bits>``, Backstage's format, stored
as a keyed SHA-256 rather than Backstage's scrypt.

scrypt (N=16384) protects low-entropy secrets such as passwords; a 256-bit random token
cannot be guessed from its hash whatever the hash costs, so HMAC-SHA256 under a key
derived from the server secret is as safe against a database leak and ~1000 times cheaper
per refresh. Hashes Backstage wrote (``salt.hash``, scrypt) still verify, so a database
shared with Backstage keeps its grants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_KEYED = "hmac-sha256:"
_UNKEYED = "sha256:"
# Backstage's lib/refreshToken parameters.
_SCRYPT_MATCHES_KEPT = 256
_SCRYPT = {"n": 16384, "r": 8, "p": 1, "dklen": 64, "maxmem": 64 * 1024 * 1024}


def derive_key(secret: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"backstage-auth-backend refresh token key",
    ).derive(secret.encode())


def token_id(token: str) -> str | None:
    """The offline session id of a well-formed token, else None."""
    parts = token.split(".")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenHasher:
    """Hashes with the first key; verifies with any (``auth.session.previousSecrets``).
    Without a configured secret, an unkeyed SHA-256 (the same on every instance)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = tuple(keys)
        # sha256(token, scrypt hash) of recent matches: a refresh checks a token before and
        # inside its transaction, and each Backstage token should pay scrypt once. A match
        # stays a match; the token itself is not kept. Checks run in worker threads.
        self._scrypt_matches: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def new_token(self, session_id: str) -> tuple[str, str]:
        token = f"{session_id}.{secrets.token_urlsafe(32)}"
        return token, self.hash(token)

    def hash(self, token: str) -> str:
        if not self._keys:
            return _UNKEYED + _b64(hashlib.sha256(token.encode()).digest())
        return _KEYED + _b64(hmac.new(self._keys[0], token.encode(), hashlib.sha256).digest())

    @staticmethod
    def is_cheap(stored: str | None) -> bool:
        """Whether checking a token against ``stored`` is a fast hash (ours), not scrypt."""
        return stored is None or stored.startswith((_KEYED, _UNKEYED))

    def matches(self, token: str, stored: str | None) -> bool:
        if not stored:
            return False
        data = token.encode()
        if stored.startswith(_KEYED):
            return any(
                hmac.compare_digest(
                    stored, _KEYED + _b64(hmac.new(key, data, hashlib.sha256).digest())
                )
                for key in self._keys
            )
        if stored.startswith(_UNKEYED):
            return hmac.compare_digest(stored, _UNKEYED + _b64(hashlib.sha256(data).digest()))
        return self._matches_scrypt(data, stored)

    def _matches_scrypt(self, data: bytes, stored: str) -> bool:
        remembered = hashlib.sha256(data + b"\0" + stored.encode()).digest()
        with self._lock:
            if remembered in self._scrypt_matches:
                return True
        if not _matches_scrypt(data, stored):
            return False
        with self._lock:
            self._scrypt_matches[remembered] = None
            while len(self._scrypt_matches) > _SCRYPT_MATCHES_KEPT:
                self._scrypt_matches.popitem(last=False)
        return True


def _matches_scrypt(data: bytes, stored: str) -> bool:
    salt_b64, _, hash_b64 = stored.partition(".")
    if not salt_b64 or not hash_b64:
        return False
    try:
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
        computed = hashlib.scrypt(data, salt=salt, **_SCRYPT)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, computed)
