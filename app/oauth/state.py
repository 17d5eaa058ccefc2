"""The OAuth ``state`` parameter, in Backstage's wire format.

Fields, in this order when present: ``nonce``, ``env``, ``origin``, ``redirectUrl``,
``flow``, ``scope``, ``audience``. They are form-urlencoded (spaces as ``+``) and the UTF-8
bytes are rendered as lower-case hex (Backstage ``plugins/auth-node/src/oauth/state.ts``).
Absent fields are dropped, empty strings kept.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote_plus

from app.core.errors import NotAllowedError

_FIELDS = (
    ("nonce", "nonce"),
    ("env", "env"),
    ("origin", "origin"),
    ("redirectUrl", "redirect_url"),
    ("flow", "flow"),
    ("scope", "scope"),
    # pinniped appends the target cluster to the decoded state and re-encodes it.
    ("audience", "audience"),
)


@dataclass(frozen=True)
class OAuthState:
    nonce: str
    env: str
    origin: str | None = None
    redirect_url: str | None = None
    flow: str | None = None
    # Only set by providers that persist scopes.
    scope: str | None = None
    # Only set by pinniped: the cluster a cluster-scoped ID token is asked for.
    audience: str | None = None


def encode_state(state: OAuthState) -> str:
    pairs = [(wire, value) for wire, attr in _FIELDS if (value := getattr(state, attr)) is not None]
    # WHATWG URLSearchParams keeps "*" and escapes "~" (Python does the opposite).
    return "&".join(f"{_form(k)}={_form(v)}" for k, v in pairs).encode().hex()


def _form(value: str) -> str:
    return quote_plus(value, safe="*").replace("~", "%7E")


def decode_state_fields(encoded: str) -> dict[str, str]:
    """Decode without validating. Undecodable input yields ``{}``, as Node's hex decoder
    stops at the first bad pair and Backstage then reports a missing env."""
    try:
        text = binascii.unhexlify(encoded).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return {}
    return dict(parse_qsl(text, keep_blank_values=True))


def decode_state(encoded: str) -> OAuthState:
    """Decode and validate a state.

    Raises:
        NotAllowedError: when ``env`` or ``nonce`` is missing (Backstage's messages).
    """
    return state_from_fields(decode_state_fields(encoded))


def state_from_fields(fields: dict[str, str]) -> OAuthState:
    """Validate decoded fields (see ``decode_state``)."""
    if not fields.get("env"):
        raise NotAllowedError("OAuth state is invalid, missing env")
    if not fields.get("nonce"):
        raise NotAllowedError("OAuth state is invalid, missing nonce")
    return OAuthState(
        nonce=fields["nonce"],
        env=fields["env"],
        origin=fields.get("origin"),
        redirect_url=fields.get("redirectUrl"),
        flow=fields.get("flow"),
        scope=fields.get("scope"),
        audience=fields.get("audience"),
    )
