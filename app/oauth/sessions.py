"""The refresh session, sealed into the ``<id>-refresh-token`` cookie.

Backstage stores the identity provider's refresh token in that cookie as plain text.
We store a JWE (``dir`` + ``A256GCM``, joserfc) of the whole session instead: the
provider's refresh token, provider id, environment, granted scope, issue time, the ID
token (for RP-initiated logout) and a random session id, which logout records as ended on
the server (``app.sessions``). Cookies sealed before sessions had ids carry none: they
are legacy sessions that keep working until they expire, and logout cannot end a copy.
The cookie name travels in the authenticated protected header, so a value cannot be
replayed under another cookie or provider. Keys derive from ``auth.session.secret``;
previous secrets keep opening existing cookies during a rotation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey
from joserfc.registry import HeaderParameter

from app.core.errors import AuthenticationError

_REGISTRY = JWERegistry(
    header_registry={"cnm": HeaderParameter("Name of the cookie holding this value", "str", True)},
    algorithms=["dir", "A256GCM"],
)


@dataclass(frozen=True)
class RefreshSession:
    refresh_token: str
    provider_id: str
    env: str
    scope: str
    issued_at: int
    id_token: str | None = None
    # None for a legacy cookie sealed before sessions had ids.
    session_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rt": self.refresh_token,
            "pid": self.provider_id,
            "env": self.env,
            "scp": self.scope,
            "iat": self.issued_at,
        }
        if self.id_token:
            out["idt"] = self.id_token
        if self.session_id:
            out["sid"] = self.session_id
        return out

    @classmethod
    def from_json(cls, data: Any) -> RefreshSession:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        id_token = data.get("idt")
        session_id = data.get("sid")
        session = cls(
            refresh_token=data["rt"],
            provider_id=data["pid"],
            env=data["env"],
            scope=data["scp"],
            issued_at=data["iat"],
            id_token=id_token if isinstance(id_token, str) else None,
            session_id=session_id if isinstance(session_id, str) and session_id else None,
        )
        if not all(isinstance(v, str) for v in (session.refresh_token, session.provider_id)):
            raise ValueError("bad field types")
        return session


def _key(secret: str) -> OctKey:
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"backstage-auth-backend session"
    ).derive(secret.encode())
    return OctKey.import_key(raw)


class SessionCodec:
    def __init__(self, secrets: Sequence[str]) -> None:
        """``secrets``: the current secret first, then previous ones still accepted."""
        if not secrets:
            raise ValueError("at least one secret is required")
        # The current key seals and is tried first.
        self._keys = [_key(s) for s in secrets]

    def seal_json(self, payload: Any, *, name: str) -> str:
        """Authenticated encryption of JSON, bound to ``name`` (a cookie or record name)."""
        header = {"alg": "dir", "enc": "A256GCM", "cnm": name}
        data = json.dumps(payload, separators=(",", ":")).encode()
        return jwe.encrypt_compact(header, data, self._keys[0], registry=_REGISTRY)

    def open_json(self, value: str, *, name: str) -> Any:
        """Raises ValueError for anything tampered, foreign or sealed for another name."""
        for key in self._keys:
            try:
                message = jwe.decrypt_compact(value, key, registry=_REGISTRY)
            except (JoseError, ValueError):
                continue
            if message.protected.get("cnm") != name:
                raise ValueError("sealed for another name")
            return json.loads(message.plaintext or b"")
        raise ValueError("not sealed with a known secret")

    def seal(self, session: RefreshSession, *, cookie_name: str) -> str:
        return self.seal_json(session.to_json(), name=cookie_name)

    def open(self, value: str, *, cookie_name: str, provider_id: str, env: str) -> RefreshSession:
        """Decrypt and check a session cookie.

        Raises:
            AuthenticationError: "Invalid session cookie" for anything tampered, foreign,
            sealed with an unknown key or meant for another cookie, provider or env.
        """
        try:
            session = RefreshSession.from_json(self.open_json(value, name=cookie_name))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthenticationError("Invalid session cookie") from exc
        if session.provider_id != provider_id or session.env != env:
            raise AuthenticationError("Invalid session cookie")
        return session
