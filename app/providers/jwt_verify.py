"""JWT verification for every provider that checks a JWT: one header policy and one
claims check.

``check_header`` is the header policy: an explicit algorithm allowlist, never a key named
or carried by the token (``jwk``, ``jku``, ``x5u``, ``x5c``), no ``crit`` extension we do not
understand. ``verify_jwt``: compact JWS verification with an explicit key (found by
``kid``), then ``validate_claims`` with the caller's rules; every failure is a ``401
AuthenticationError`` that says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from app.core.errors import AuthenticationError
from app.providers.remote_keys import PublicKey

# Clock skew tolerated on exp/nbf/iat.
CLOCK_SKEW_SECONDS = 60
# Larger tokens are refused before any parsing.
MAX_TOKEN_LENGTH = 32 * 1024

# Header members that name or carry keys: keys come from our configuration only.
_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")
_KEY_TYPES: Mapping[str, type[PublicKey]] = {
    "ES": ECKey,
    "RS": RSAKey,
    "PS": RSAKey,
    "Ed": OKPKey,
}


@dataclass(frozen=True)
class CompactJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def _b64url_decode(segment: str, *, allow_padding: bool) -> bytes:
    if allow_padding:
        segment = segment.rstrip("=")
    if not _B64URL.match(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def parse_compact(token: str, *, what: str, allow_padding: bool = False) -> CompactJws:
    """Split a compact JWS without verifying it.

    ``allow_padding`` accepts base64url segments with ``=`` padding (AWS ALB sends them;
    the signature covers the segments as sent).

    Raises:
        AuthenticationError: when the token is not a compact JWS with JSON header and claims.
    """
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise AuthenticationError(f"The {what} is too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError(f"The {what} is malformed, expected a JWT")
    try:
        header_value = _json_object(_b64url_decode(parts[0], allow_padding=allow_padding))
        claims = _json_object(_b64url_decode(parts[1], allow_padding=allow_padding))
        signature = _b64url_decode(parts[2], allow_padding=allow_padding)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise AuthenticationError(f"The {what} is malformed, expected a JWT") from exc
    return CompactJws(
        header=header_value,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def check_header(
    token: CompactJws, *, what: str, algorithms: Collection[str], require_kid: bool = True
) -> str | None:
    """The header policy: ``alg`` in the allowlist, no embedded or referenced keys, no
    ``crit`` extension; returns the ``kid`` (None only when ``require_kid`` is off).

    Raises:
        AuthenticationError: naming what is wrong.
    """
    alg = token.header.get("alg")
    if alg not in algorithms:
        allowed = ", ".join(sorted(algorithms))
        raise AuthenticationError(
            f"The {what} uses the algorithm {alg!r}; only {allowed} is accepted"
        )
    present = [name for name in _KEY_HEADERS if name in token.header]
    if present:
        raise AuthenticationError(
            f"The {what} carries key material in its header ({', '.join(present)}); refused"
        )
    if "crit" in token.header:
        # No extension is understood here, so none that is critical can be honoured.
        raise AuthenticationError(f"The {what} names critical header extensions; refused")
    try:
        jws.JWSRegistry(algorithms=list(algorithms), strict_check_header=False).check_header(
            token.header
        )
    except JoseError as exc:
        raise AuthenticationError(f"The {what} has an invalid header ({exc.error})") from exc
    kid = token.header.get("kid")
    if kid is None and not require_kid:
        return None
    if not isinstance(kid, str) or not kid:
        raise AuthenticationError(f"The {what} has no key id (kid) in its header")
    return kid


def verify_signature(token: CompactJws, key: PublicKey, *, what: str) -> None:
    """Checks the signature with ``key`` under the header's (already allowed) ``alg``.

    Raises:
        AuthenticationError: when the key does not fit the algorithm or the signature fails.
    """
    alg_name = str(token.header["alg"])
    expected_type = _KEY_TYPES.get(alg_name[:2])
    if expected_type is None or not isinstance(key, expected_type):
        raise AuthenticationError(f"The {what} names a key that does not fit {alg_name}")
    registry = jws.JWSRegistry(algorithms=[alg_name])
    try:
        algorithm = registry.get_alg(alg_name)
        algorithm.check_key(key)
        valid = algorithm.verify(token.signing_input, token.signature, key)
    except JoseError as exc:
        raise AuthenticationError(
            f"The {what} names a key that does not fit {alg_name} ({exc.error})"
        ) from exc
    if not valid:
        raise AuthenticationError(f"The {what} has an invalid signature")


def validate_claims(
    claims: Mapping[str, Any],
    *,
    what: str,
    now: float,
    issuer: str | None = None,
    audiences: Sequence[str] | None = None,
    required: Sequence[str] = ("exp",),
) -> None:
    """``exp``/``nbf``/``iat`` (with clock skew), ``iss``, ``aud`` (any of ``audiences``).

    Raises:
        AuthenticationError: "The <what> has expired", "... has the wrong issuer", ...
    """
    options: dict[str, ClaimsOption] = {name: {"essential": True} for name in required}
    if issuer is not None:
        options["iss"] = {"essential": True, "value": issuer}
    if audiences is not None:
        options["aud"] = {"essential": True, "values": list(audiences)}
    registry = JWTClaimsRegistry(now=int(now), leeway=CLOCK_SKEW_SECONDS, **options)
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError as exc:
        raise AuthenticationError(f"The {what} has expired") from exc
    except MissingClaimError as exc:
        raise AuthenticationError(f"The {what} is missing the claim(s) {exc.claim}") from exc
    except InvalidClaimError as exc:
        raise AuthenticationError(_invalid_claim_message(what, exc.claim, claims)) from exc
    except JoseError as exc:
        raise AuthenticationError(f"The {what} was refused ({exc.error})") from exc


def _invalid_claim_message(what: str, claim: str, claims: Mapping[str, Any]) -> str:
    if claim == "iss":
        return f"The {what} has the wrong issuer {claims.get('iss')!r}"
    if claim == "aud":
        return f"The {what} has the wrong audience {claims.get('aud')!r}"
    if claim in ("nbf", "iat"):
        return f"The {what} is not valid yet ({claim} is in the future)"
    return f"The {what} has an invalid '{claim}' claim"


KeyLookup: TypeAlias = Callable[[str], Awaitable[PublicKey | None]]
OptionalKidLookup: TypeAlias = Callable[[str | None], Awaitable[PublicKey | None]]


async def verify_jwt(
    token: str,
    *,
    what: str,
    algorithms: Collection[str],
    key_for: KeyLookup | OptionalKidLookup,
    allow_padding: bool = False,
    require_kid: bool = True,
) -> CompactJws:
    """Parse, check the header, find the key by ``kid``, verify the signature.

    ``require_kid=False`` (ID tokens): a token without ``kid`` is checked with the key
    ``key_for(None)`` names, which must then accept None.

    Claims are returned unchecked: callers run ``validate_claims`` with their rules.
    """
    parsed = parse_compact(token, what=what, allow_padding=allow_padding)
    kid = check_header(parsed, what=what, algorithms=algorithms, require_kid=require_kid)
    key = await key_for(kid)  # type: ignore[arg-type]  # None only when require_kid is off
    if key is None:
        raise AuthenticationError(f"The {what} was signed by an unknown key (kid {kid!r})")
    verify_signature(parsed, key, what=what)
    return parsed


def decode_unverified(token: str, *, what: str) -> dict[str, Any]:
    """The claims of a JWT whose signature is NOT checked (a trusted proxy vouches for it).

    Raises:
        AuthenticationError: when the token is not a JWT.
    """
    return parse_compact(token, what=what).claims
