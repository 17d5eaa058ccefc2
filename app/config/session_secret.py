"""The server's secrets, from ``auth.session.secret`` (and ``previousSecrets``).

They key the per-sign-in secrets (``app.oauth.flow_secrets``) and the sealed refresh
sessions (``app.oauth.sessions``). Without a configured secret, development generates one
and keeps it in the data directory (so restarts keep sessions); production refuses to
start when an OAuth provider needs it: OAuth providers keep sessions, proxy providers
(guest, awsalb, gcpIap, ...) start no flows and keep none. Which kind a provider is
belongs to the provider registry, above this layer, so the caller says whether any
configured provider keeps sessions.

HKDF has no work factor, so a guessable secret is found offline from any sealed cookie:
outside development a configured secret must be at least ``MIN_SECRET_LENGTH``
characters, and ``check-config`` warns on secrets that look guessable
(``secret_weakness``).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config.settings import Settings
from app.config.validation import ConfigError

log = logging.getLogger(__name__)

GENERATED_SECRET_FILE = "session-secret"
MIN_SECRET_LENGTH = 32
# What ``secret_weakness`` asks of a secret: 128 bits by the estimate below, and at least
# this many distinct characters (a repeated word has few).
_MIN_ESTIMATED_BITS = 128
_MIN_DISTINCT_CHARACTERS = 10
_CHARACTER_CLASSES: tuple[tuple[int, str], ...] = (
    (26, "abcdefghijklmnopqrstuvwxyz"),
    (26, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    (10, "0123456789"),
)
_OTHER_CLASS_SIZE = 33  # printable ASCII punctuation and space


def estimated_bits(secret: str) -> float:
    """Length × log2(size of the character classes used): an upper bound on what a
    random secret of this shape holds, which says nothing about words or patterns."""
    pool = sum(size for size, chars in _CHARACTER_CLASSES if any(c in chars for c in secret))
    if any(not any(c in chars for _, chars in _CHARACTER_CLASSES) for c in secret):
        pool += _OTHER_CLASS_SIZE
    return len(secret) * math.log2(pool) if pool else 0.0


def secret_weakness(secret: str) -> str | None:
    """Why ``secret`` looks guessable, or None. A heuristic: it catches short secrets,
    secrets of few distinct characters (repeated words) and letters-only secrets (words
    and phrases), not every dictionary phrase."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(secret)) < _MIN_DISTINCT_CHARACTERS:
        return f"only {len(set(secret))} distinct characters"
    if secret.isalpha():
        return "letters only (a word or phrase is in the dictionaries attackers try)"
    bits = estimated_bits(secret)
    if bits < _MIN_ESTIMATED_BITS:
        return f"about {bits:.0f} bits by length and character classes"
    return None


def _check_length(key: str, secret: str) -> None:
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{key}: {len(secret)} characters; outside development it must be at least "
            f"{MIN_SECRET_LENGTH} (a short secret is guessed offline from any sealed "
            "cookie); generate one with `openssl rand -base64 32`"
        )


@dataclass(frozen=True)
class ServerSecrets:
    current: str
    previous: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return (self.current, *self.previous)

    @property
    def flow_key(self) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"backstage-auth-backend flow key"
        ).derive(self.current.encode())


def _development_secret(data_dir: Path) -> str:
    path = data_dir / GENERATED_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another worker created it first.
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value)
    log.warning(
        "auth.session.secret is not set: generated a development secret in %s "
        "(set auth.session.secret in production)",
        path,
    )
    return value


def server_secrets(
    settings: Settings, *, development: bool, data_dir: Path | None, keeps_sessions: bool
) -> ServerSecrets:
    """``keeps_sessions``: whether any configured provider is an OAuth provider.

    Raises:
        ConfigError: outside development without ``auth.session.secret`` when a
            configured provider keeps sessions, or when it or a previous secret is short.
    """
    secret = settings.session_secret
    if not development:
        if secret is not None:
            _check_length("auth.session.secret", secret)
        for index, previous in enumerate(settings.previous_session_secrets):
            _check_length(f"auth.session.previousSecrets.{index}", previous)
    if secret is None:
        if not development and keeps_sessions:
            raise ConfigError(
                "auth.session.secret: required outside development (it protects sign-ins "
                "in progress and refresh sessions); set it to a long random value"
            )
        secret = secrets.token_urlsafe(32) if data_dir is None else _development_secret(data_dir)
    return ServerSecrets(secret, settings.previous_session_secrets)
