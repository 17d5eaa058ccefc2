"""Per-sign-in secrets derived from the nonce cookie and the server's session key.

Backstage keeps the OIDC nonce and the PKCE verifier in an express-session row (and a
``connect.sid`` cookie). We derive both with HKDF from the server key and the flow's
random nonce instead: the nonce cookie is HttpOnly, single-use and bound to this browser,
so the verifier is as secret and as browser-bound as a stored one, and every instance
that shares the key can finish a sign-in another one started, with no session store.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@dataclass(frozen=True)
class FlowSecrets:
    """Per-sign-in secrets derived from the nonce cookie :
    the same values are available at /start and in the callback without server state."""

    code_verifier: str
    oidc_nonce: str


def _derive(key: bytes, nonce: str, purpose: bytes) -> str:
    out = HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce.encode(), info=purpose).derive(key)
    return base64.urlsafe_b64encode(out).rstrip(b"=").decode()


def derive_flow_secrets(key: bytes, nonce: str) -> FlowSecrets:
    return FlowSecrets(
        # 43 base64url characters: RFC 7636's minimum length, from 256 bits.
        code_verifier=_derive(key, nonce, b"backstage-auth-backend pkce verifier"),
        oidc_nonce=_derive(key, nonce, b"backstage-auth-backend oidc nonce"),
    )
