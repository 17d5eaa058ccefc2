"""The server's secrets, from ``auth.session.secret`` (and ``previousSecrets``).

They key the per-sign-in secrets (``app.oauth.flow_secrets``) and the sealed refresh
sessions (``app.oauth.sessions``). Without a configured secret, development generates one
and keeps it in the data directory (so restarts keep sessions); production refuses to
start when an OAuth provider needs it: OAuth providers keep sessions, proxy providers
(guest, awsalb, gcpIap, ...) start no flows and keep none. Which kind a provider is
belongs to the provider registry, above this layer, so the caller says whether any
configured provider keeps sessions.
"""

from __future__ import annotations

import logging
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
            configured provider keeps sessions.
    """
    secret = settings.session_secret
    if secret is None:
        if not development and keeps_sessions:
            raise ConfigError(
                "auth.session.secret: required outside development (it protects sign-ins "
                "in progress and refresh sessions); set it to a long random value"
            )
        secret = secrets.token_urlsafe(32) if data_dir is None else _development_secret(data_dir)
    return ServerSecrets(secret, settings.previous_session_secrets)
