"""Service callers: ``backend.auth.externalAccess`` tokens as Backstage's backend accepts
them (``ExternalAuthTokenHandler`` and its ``static``, ``legacy`` and ``jwks`` handlers).

* ``static``: the token itself; the caller is the configured subject.
* ``legacy``: an HS256 JWT with ``sub: backstage-server`` and no ``aud``, signed with the
  shared secret; the caller is the configured subject.
* ``jwks``: a JWT signed by a key of the configured JWKS URL, with one of the configured
  algorithms, issuers and audiences (each unchecked when not configured), not expired,
  with a ``sub``; the caller is ``external:<subjectPrefix>:<sub>`` (``external:<sub>``
  without a prefix).

Entries are tried in order; the first that accepts wins. An entry with
``accessRestrictions`` that do not name this plugin refuses the token with Backstage's 403.
A JWKS that cannot be fetched refuses the token (as jose's errors are caught there); its
keys are fetched on first use, cached, and refetched on an unknown ``kid`` at most once
per ``KEY_REFETCH_INTERVAL_SECONDS`` (``RemoteJwks``), so made-up ``kid`` values cannot
become a stream of requests to the key endpoint.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jws import extract_compact
from joserfc.jwt import ClaimsOption

from app.config.discovery import OWN_PLUGIN_ID
from app.config.external_access import ExternalAccess, JwksOptions
from app.core.clock import Clock
from app.core.errors import NotAllowedError, ServiceUnavailableError
from app.providers.remote_keys import OutboundHttp, PublicKey, RemoteJwks

log = logging.getLogger(__name__)

# jose accepts any algorithm its key supports when none is configured; the keys of a
# remote JWKS are public keys, so these are the algorithms that can apply.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


def _values(option: tuple[str, ...] | None) -> ClaimsOption:
    return {"essential": True, "values": list(option)} if option else {}


def _verified(token: str, keys: tuple[PublicKey, ...], algorithms: list[str]) -> jwt.Token | None:
    """The token verified by the first of ``keys`` that fits its algorithm and signature
    (without a ``kid``, jose tries each key of the set likewise)."""
    for key in keys:
        try:
            return jwt.decode(token, key, algorithms=algorithms)
        except (JoseError, ValueError):
            continue
    return None


class _JwksEntry:
    def __init__(self, options: JwksOptions, http: OutboundHttp, clock: Clock) -> None:
        self._options = options
        self._clock = clock
        self.keys = RemoteJwks(
            url=options.url, http=http, clock=clock, what="externalAccess JWKS keys"
        )
        prefix = options.subject_prefix
        self._prefix = f"external:{prefix}:" if prefix else "external:"
        self._algorithms = list(options.algorithms or ASYMMETRIC_ALGORITHMS)

    async def subject(self, token: str, header: Mapping[str, Any], claims: Any) -> str | None:
        if not isinstance(claims, dict):
            return None
        if header.get("alg") not in self._algorithms:
            return None
        # A token of another issuer is not this entry's: no key fetch for it.
        issuers = self._options.issuers
        if issuers and claims.get("iss") not in issuers:
            return None
        kid = header.get("kid")
        try:
            if isinstance(kid, str):
                key = await self.keys.key_for(kid)
                keys: tuple[PublicKey, ...] = (key,) if key is not None else ()
            else:
                keys = await self.keys.all_keys()
        except ServiceUnavailableError as exc:
            log.warning("externalAccess jwks token refused: %s", exc.message)
            return None
        decoded = _verified(token, keys, self._algorithms)
        if decoded is None:
            return None
        now = int(self._clock.now())
        try:
            claims = dict(decoded.claims)
            # jose checks that iat is a number, not that it is past (only with a maximum
            # token age, which Backstage does not set): an issuer's clock a little ahead
            # is no reason to refuse.
            iat = claims.pop("iat", 0)
            if isinstance(iat, bool) or not isinstance(iat, int | float):
                return None
            jwt.JWTClaimsRegistry(
                now=now,
                iss=_values(issuers),
                aud=_values(self._options.audiences),
            ).validate(claims)
        except (JoseError, ValueError):
            return None
        exp = claims.get("exp")
        # jose: expired when exp <= now (joserfc only when exp < now).
        if isinstance(exp, int | float) and exp <= now:
            return None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            return None
        return f"{self._prefix}{sub}"


class ServiceCallers:
    def __init__(
        self,
        entries: Iterable[ExternalAccess],
        clock: Clock,
        http: OutboundHttp | None = None,
        *,
        own_plugin_id: str = OWN_PLUGIN_ID,
    ) -> None:
        self._entries = tuple(entries)
        self._clock = clock
        self._own = own_plugin_id
        self._http = http or OutboundHttp()
        self._jwks = {
            i: _JwksEntry(entry.jwks, self._http, clock)
            for i, entry in enumerate(self._entries)
            if entry.jwks is not None
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    async def subject(self, token: str) -> str | None:
        """The subject of a valid service token, else None.

        Raises:
            NotAllowedError: the token's ``accessRestrictions`` do not include this plugin.
        """
        header: Mapping[str, Any] | None = None
        claims: Any = None
        if self._jwks:
            try:
                compact = extract_compact(token.encode())
                header, claims = compact.protected, json.loads(compact.payload)
            except (JoseError, ValueError, UnicodeError):
                header = None
        for i, entry in enumerate(self._entries):
            subject: str | None = None
            if entry.type == "static" and entry.token is not None:
                if hmac.compare_digest(entry.token.encode(), token.encode()):
                    subject = entry.subject
            elif entry.type == "legacy" and entry.key is not None:
                if self._legacy(token, entry.key):
                    subject = entry.subject
            elif i in self._jwks and header is not None:
                subject = await self._jwks[i].subject(token, header, claims)
            if subject is not None:
                self._check_restrictions(entry)
                return subject
        return None

    def _check_restrictions(self, entry: ExternalAccess) -> None:
        if entry.restricted_to is not None and self._own not in entry.restricted_to:
            valid = ", ".join(f"'{p}'" for p in entry.restricted_to)
            raise NotAllowedError(f"This token's access is restricted to plugin(s) {valid}")

    def _legacy(self, token: str, key: bytes) -> bool:
        try:
            decoded = jwt.decode(token, OctKey.import_key(key), algorithms=["HS256"])
            claims = decoded.claims
            if claims.get("sub") != "backstage-server" or claims.get("aud"):
                return False
            jwt.JWTClaimsRegistry(now=int(self._clock.now())).validate(claims)
        except (JoseError, ValueError):
            return False
        return True
