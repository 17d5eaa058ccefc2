"""The server's own secret, from ``auth.session.secret``.

It keys the per-sign-in secrets (``app.oauth.flow_secrets``). Without a configured
secret, development generates one and keeps it in the data directory, so a restart does
not break sign-ins in progress; production refuses to start.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import ConfigError, Settings

log = logging.getLogger(__name__)

GENERATED_SECRET_FILE = "session-secret"


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


def _development_secret(data_dir: Path) -> str:
    path = data_dir / GENERATED_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    log.warning("auth.session.secret is not set: generated a development secret in %s", path)
    return value


def flow_key_from_settings(
    settings: Settings, *, development: bool, data_dir: Path | None
) -> bytes:
    """Raises ConfigError in production without ``auth.session.secret`` when an OAuth
    provider needs it."""
    secret = settings.session_secret
    if secret is None:
        needs_secret = any(pid not in {"guest"} for pid in settings.providers)
        if not development and needs_secret:
            raise ConfigError(
                "auth.session.secret: required outside development (it protects sign-ins "
                "in progress); set it to a long random value"
            )
        if data_dir is None:
            secret = secrets.token_urlsafe(32)
        else:
            secret = _development_secret(data_dir)
    return _derive(secret, b"backstage-auth-backend flow key")
