"""Backstage user tokens, as ``TokenFactory`` in ``@backstage/plugin-auth-backend`` issues them.

Each process signs with its own lazily generated key pair. Only the public half goes to
the shared key store, and it goes there before the first signature, so any process can
verify any token as soon as it exists. Where other processes cache the key list
(``CachedKeyStore``), a key goes there ``publish_delay`` seconds before its first signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from app.core.clock import Clock
from app.core.errors import BackstageError, InputError
from app.identity.entity_ref import canonical_entity_ref
from app.identity.key_cache import CachedKeyStore
from app.identity.keys import KeyStore, StoredKey
from app.identity.static_keys import StaticKey
from app.identity.user_info import UserInfoStore
from app.identity.user_info_writer import UserInfoWriter

logger = logging.getLogger(__name__)

USER_TOKEN_TYPE = "vnd.backstage.user"
LIMITED_USER_TOKEN_TYPE = "vnd.backstage.limited-user"
AUDIENCE = "backstage"
MAX_TOKEN_LENGTH = 32768
# With a publish delay, the next key is published this long before the current one expires
# (never less than the delay): a sign-in anywhere in that last minute prepares it, so only
# a process idle for the whole minute makes a sign-in wait for a fresh key.
NEXT_KEY_LEAD_SECONDS = 60.0

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
SUPPORTED_ALGORITHMS = frozenset(_EC_CURVES) | _RSA_ALGORITHMS

_INVALID_SUB = '"sub" claim provided by the auth resolver is not a valid EntityRef.'
_INVALID_ENT = '"ent" claim provided by the auth resolver contains an invalid EntityRef.'


def _json(value: Any) -> bytes:
    # JSON.stringify's bytes: compact, key order kept, non-ASCII left unescaped.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def canonicalize_identity(sub: str, ent: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """Canonical ``sub`` and de-duplicated canonical ``ent`` (order kept); refs need a kind."""
    try:
        canonical_sub = canonical_entity_ref(sub)
    except ValueError:
        raise InputError(_INVALID_SUB) from None
    try:
        canonical_ent = tuple(dict.fromkeys(canonical_entity_ref(ref) for ref in ent))
    except ValueError:
        raise InputError(_INVALID_ENT) from None
    return canonical_sub, canonical_ent


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    private_key: ECKey | RSAKey
    expires_at: float
    # Not before this may it sign: other instances' caches must have seen it.
    usable_at: float = float("-inf")


def _public_jwk(key: ECKey | RSAKey, kid: str, algorithm: str) -> dict[str, Any]:
    # The member order of jose's exportJWK (what Backstage stores), plus kid and alg.
    public = key.as_dict(private=False)
    if isinstance(key, ECKey):
        ordered = {m: public[m] for m in ("kty", "x", "y", "crv")}
    else:
        ordered = {m: public[m] for m in ("kty", "n", "e")}
    return {**ordered, "kid": kid, "alg": algorithm}


def _key_generator(algorithm: str) -> Callable[[], ECKey | RSAKey]:
    if algorithm in _EC_CURVES:
        curve = _EC_CURVES[algorithm]
        return lambda: ECKey.generate_key(curve)
    if algorithm in _RSA_ALGORITHMS:
        # jose's generateKeyPair default modulus length.
        return lambda: RSAKey.generate_key(2048)
    raise ValueError(
        f"Unsupported identity token algorithm '{algorithm}'; "
        f"expected one of {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
    )


class TokenIssuer:
    def __init__(
        self,
        *,
        issuer: str,
        key_store: KeyStore,
        clock: Clock,
        algorithm: str = "ES256",
        expiration_seconds: int = 3600,
        omit_ownership_claim: bool = True,
        user_info: UserInfoStore | None = None,
        on_new_key: Callable[[str], None] | None = None,
        static_key: StaticKey | None = None,
        publish_delay: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``publish_delay``: seconds a new key spends in the key store before it signs;
        None takes it from a ``CachedKeyStore`` (its staleness bound), else 0."""
        if static_key is not None:
            # A mounted key signs for ever, with its own algorithm.
            algorithm = static_key.algorithm
        # Fail at startup rather than on the first sign-in.
        self._generate = _key_generator(algorithm)
        self._issuer = issuer
        self._key_store = key_store
        self._clock = clock
        self._algorithm = algorithm
        self._expiration_seconds = expiration_seconds
        self._omit_ownership_claim = omit_ownership_claim
        self._user_info = UserInfoWriter(user_info, clock) if user_info is not None else None
        self._on_new_key = on_new_key
        self._current: _SigningKey | None = (
            _SigningKey(static_key.kid, static_key.private_key, float("inf"))
            if static_key is not None
            else None
        )
        self._lock = asyncio.Lock()
        if publish_delay is None:
            publish_delay = (
                key_store.publish_delay if isinstance(key_store, CachedKeyStore) else 0.0
            )
        # A key published ahead must still sign for most of its life.
        if publish_delay * 2 >= expiration_seconds:
            raise ValueError("publish_delay must be less than half the token expiration")
        self._publish_delay = publish_delay
        self._next_key_lead = max(publish_delay, min(NEXT_KEY_LEAD_SECONDS, expiration_seconds / 2))
        # Published, not yet usable: the key that takes over from _current.
        self._next: _SigningKey | None = None
        self._sleep = sleep

    @property
    def expiration_seconds(self) -> int:
        return self._expiration_seconds

    @property
    def issuer(self) -> str:
        """``iss`` of the tokens issued here."""
        return self._issuer

    @property
    def algorithm(self) -> str:
        return self._algorithm

    async def issue_token(
        self,
        *,
        sub: str,
        ent: Sequence[str],
        extra_claims: Mapping[str, Any] | None = None,
        record_user_info: bool = True,
    ) -> str:
        """``record_user_info=False``: a token for a user who signed in earlier (the
        authorization server's grants), whose stored claims must stay as they are."""
        sub, ownership = canonicalize_identity(sub, ent)
        # sub and ent are destructured out of the resolver's claims in Backstage.
        extra = {k: v for k, v in (extra_claims or {}).items() if k not in ("sub", "ent")}
        key = await self._signing_key()

        iat = math.floor(self._clock.now())
        exp = iat + self._expiration_seconds
        uip = self._user_identity_proof(key, sub=sub, iat=iat, exp=exp)

        # Assignment order mirrors `{...additionalClaims, iss, sub, ent, aud, iat, exp, uip}`:
        # a custom claim that shadows a standard one keeps its position but loses its value.
        claims: dict[str, Any] = dict(extra)
        claims["iss"] = self._issuer
        claims["sub"] = sub
        if not self._omit_ownership_claim:
            claims["ent"] = list(ownership)
        claims["aud"] = AUDIENCE
        claims["iat"] = iat
        claims["exp"] = exp
        claims["uip"] = uip

        header = {"typ": USER_TOKEN_TYPE, "alg": self._algorithm, "kid": key.kid}
        token = self._sign(key, header, _json(claims))
        if len(token) > MAX_TOKEN_LENGTH:
            raise BackstageError(
                "Failed to issue a new user token. The resulting token is excessively large, "
                "with either too many ownership claims or too large custom claims. You likely "
                "have a bug either in the sign-in resolver or catalog data. The following "
                f"claims were requested: '{_json(claims).decode()}'"
            )

        # DEBUG: one line per refresh made 52 MB of logs per 8 minutes at 300 requests/s.
        logger.debug("Issuing token for %s, with entities %s", sub, ",".join(ownership))
        if self._user_info is not None and record_user_info:
            claims_doc = {"sub": sub, "ent": list(ownership), **extra}
            # The same claims written moments ago need no second write: on every refresh
            # this was a database round trip per request (docs/benchmarks.md).
            await self._user_info.write(sub, claims_doc)
        return token

    async def aclose(self) -> None:
        """At shutdown, before the database closes: cancel the key list's background
        reload, if one is running (``CachedKeyStore``)."""
        if isinstance(self._key_store, CachedKeyStore):
            await self._key_store.aclose()

    async def ping(self, *, timeout_seconds: float | None = None) -> None:
        """Raises ServiceUnavailableError when the key store cannot be reached (within
        ``timeout_seconds``, or the store's own deadline)."""
        await self._key_store.ping(timeout_seconds=timeout_seconds)

    async def list_public_keys(self) -> list[dict[str, Any]]:
        """Keys that may have signed a still-valid token: younger than 3x the key lifetime."""
        now = self._clock.now()
        window = 3 * self._expiration_seconds
        valid: list[dict[str, Any]] = []
        expired: list[str] = []
        for stored in await self._key_store.list_keys():
            if stored.created_at + window > now:
                valid.append(dict(stored.jwk))
            else:
                expired.append(stored.kid)
        if expired:
            logger.info("Removing expired signing keys, '%s'", "', '".join(expired))
            try:
                await self._key_store.remove_keys(expired)
            except Exception:
                # Pruning is housekeeping; serving the JWKS matters more.
                logger.exception("Failed to remove expired signing keys")
        return valid

    async def publish_first_key(self) -> None:
        """Publish this process's first key ahead of its first sign-in (best effort: an
        unreachable key store is retried by that sign-in)."""
        if self._publish_delay > 0 and self._current is None and self._next is None:
            await self._publish_next()

    async def _signing_key(self) -> _SigningKey:
        now = self._clock.now()
        key = self._usable_key(now)
        if key is not None:
            if (
                self._publish_delay > 0
                and self._next is None
                and key.expires_at - now <= self._next_key_lead
                # One request publishes; the others keep signing with the current key.
                and not self._lock.locked()
            ):
                await self._publish_next()
            return key
        # Concurrent issuers queue here and reuse the key the first one generated.
        async with self._lock:
            now = self._clock.now()
            key = self._usable_key(now)
            if key is not None:
                return key
            if self._current is not None:
                logger.info("Signing key has expired, generating new key")
            key = self._next or await self._publish_key()
            self._next = key
            # Only the first key of a process, or one after an idle rotation window, gets
            # here unpublished long enough. Waiting (once, for the remaining time: a fake
            # clock in tests may not move) is the price of never signing with a key that
            # another instance's cached JWKS lacks; the queued issuers wait with us.
            wait = key.usable_at - self._clock.now()
            if wait > 0:
                await self._sleep(wait)
            self._current, self._next = key, None
            return key

    def _usable_key(self, now: float) -> _SigningKey | None:
        """The newest key that may sign now, promoting the next key once it is old enough."""
        following = self._next
        if following is not None:
            if following.expires_at <= now:
                self._next = None
            elif following.usable_at <= now:
                self._current, self._next = following, None
        current = self._current
        if current is not None and current.usable_at <= now < current.expires_at:
            return current
        return None

    async def _publish_next(self) -> None:
        async with self._lock:
            if self._next is not None:
                return
            try:
                self._next = await self._publish_key()
            except Exception:
                # The current key still signs; a later sign-in tries again.
                logger.exception("Failed to publish the next signing key")

    async def _publish_key(self) -> _SigningKey:
        # The key may not sign anything until verifiers can find it.
        created_at = self._clock.now()
        private_key = self._generate()
        kid = str(uuid.uuid4())
        await self._key_store.add_key(
            StoredKey(
                kid=kid,
                jwk=_public_jwk(private_key, kid, self._algorithm),
                created_at=created_at,
            )
        )
        logger.info("Created new signing key %s", kid)
        if self._on_new_key is not None:
            self._on_new_key(kid)
        # Counted from when add_key returned: the row is committed by then.
        usable_at = (
            self._clock.now() + self._publish_delay if self._publish_delay > 0 else created_at
        )
        return _SigningKey(kid, private_key, created_at + self._expiration_seconds, usable_at)

    def _user_identity_proof(self, key: _SigningKey, *, sub: str, iat: int, exp: int) -> str:
        # Other backends rebuild `b64(header).b64(payload).uip` from these exact bytes.
        header = {"typ": LIMITED_USER_TOKEN_TYPE, "alg": self._algorithm, "kid": key.kid}
        payload = _json({"sub": sub, "iat": iat, "exp": exp})
        return self._sign(key, header, payload).rsplit(".", 1)[1]

    def _sign(self, key: _SigningKey, header: dict[str, Any], payload: bytes) -> str:
        # joserfc keeps the header's key order and signs the payload bytes as given.
        return jws.serialize_compact(header, payload, key.private_key, algorithms=[self._algorithm])
