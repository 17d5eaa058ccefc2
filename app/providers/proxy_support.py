"""What the proxy providers share: request access, trusted peers, remote keys and JWTs.

* ``header`` (case-insensitive name) and ``cookie`` reads from a ``ProxyRequest``.
* ``TrustedProxies``, ``HeaderTrustSettings``: the peer-address allow-list
  (``trustedProxies``) of the providers that trust headers without a signature
  (``oauth2Proxy``, ``azureEasyAuth``); without it they refuse every request.
* ``OutboundHttp``: GETs to key and identity endpoints (timeouts, no redirects).
* ``FetchLimiter``, ``RemoteJwks``: signing keys fetched on first use, cached, reloaded on an
  unknown ``kid`` at most once per interval (an attacker's made-up ``kid`` values must not
  turn into a stream of requests to the key endpoint).
* ``verify_jwt``: compact JWS verification with an explicit algorithm allowlist and an
  explicit key (never one named by the token), then the claims; every failure is a
  ``401 AuthenticationError`` that says what was wrong.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx
from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry
from pydantic import field_validator

from app.core.clock import Clock
from app.core.errors import AuthenticationError, ServiceUnavailableError
from app.providers.base import ProxyRequest
from app.providers.settings import Lenient, SignInSettings

log = logging.getLogger(__name__)

# Clock skew tolerated on exp/nbf/iat.
CLOCK_SKEW_SECONDS = 60
# Fetched keys are reused this long before a reload.
KEY_CACHE_TTL_SECONDS = 3600.0
# An unknown kid reloads the keys at most once per this interval.
KEY_REFETCH_INTERVAL_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 10.0
# Larger tokens are refused before any parsing.
MAX_TOKEN_LENGTH = 32 * 1024

PublicKey: TypeAlias = ECKey | RSAKey
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# Header members that name or carry keys: keys come from our configuration only.
_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")
_KEY_TYPES: Mapping[str, type[PublicKey]] = {"ES": ECKey, "RS": RSAKey, "PS": RSAKey}


# -- request access ---------------------------------------------------------------------


def header(request: ProxyRequest, name: str) -> str | None:
    """A request header, by case-insensitive name."""
    wanted = name.lower()
    for key, value in request.headers.items():
        if key.lower() == wanted:
            return value
    return None


def cookie(request: ProxyRequest, name: str) -> str | None:
    value = request.cookies.get(name)
    return value if value else None


# -- trusted proxies --------------------------------------------------------------------


def parse_networks(values: str | Sequence[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses; a string may list several, comma-separated.

    Raises:
        ValueError: naming the entry that is not an address or network.
    """
    items = values.split(",") if isinstance(values, str) else list(values)
    networks: list[Network] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if not isinstance(text, str) or not text:
            raise ValueError(f"{item!r} is not an IP address or CIDR")
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an IP address or CIDR") from exc
    return tuple(networks)


class TrustedProxies:
    """Which peers may assert identity through plain headers.

    A provider that trusts unsigned headers accepts them only from the proxy that sets
    them; anyone who can reach the server directly could otherwise send them. With no
    configured proxies, every request is refused.
    """

    def __init__(self, networks: Sequence[Network] | None, *, config_path: str) -> None:
        self._networks = tuple(networks or ())
        self._config_path = config_path

    @property
    def configured(self) -> bool:
        return bool(self._networks)

    def check(self, client_host: str | None, *, headers_what: str) -> None:
        """Raises AuthenticationError unless ``client_host`` is a trusted proxy."""
        key = f"{self._config_path}.trustedProxies"
        if not self._networks:
            raise AuthenticationError(
                f"This provider trusts {headers_what} only from the proxies listed in "
                f"'{key}', and none is configured; set it to the address or CIDR of the "
                'proxy in front of this server (e.g. ["10.0.0.0/8"])'
            )
        address = _ip(client_host)
        if address is None or not any(address in network for network in self._networks):
            raise AuthenticationError(
                f"Request refused: {headers_what} are trusted only from the proxies in "
                f"'{key}', and this request came from {client_host or 'an unknown address'}"
            )


class HeaderTrustSettings(Lenient):
    """Config of the providers that trust unsigned headers (``oauth2Proxy``, ``azureEasyAuth``)."""

    # Ours: the direct peers allowed to assert identity (addresses or CIDRs).
    trustedProxies: tuple[Network, ...] = ()
    signIn: SignInSettings | None = None

    @field_validator("trustedProxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[Network, ...]:
        if value is None:
            return ()
        if not isinstance(value, str | list | tuple):
            raise ValueError("must be a list of IP addresses or CIDRs")
        return parse_networks(value)


def build_trusted_proxies(
    settings: HeaderTrustSettings, path: str, provider: str
) -> TrustedProxies:
    """The provider's ``TrustedProxies``; warns at startup when none is configured."""
    if not settings.trustedProxies:
        log.warning(
            "%s.trustedProxies is not set: every %s sign-in is refused until it lists the "
            "proxies allowed to send identity headers",
            path,
            provider,
        )
    return TrustedProxies(settings.trustedProxies, config_path=path)


def _ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# -- key fetching -------------------------------------------------------------------------


class FetchLimiter:
    """At most ``burst`` fetches in any ``interval_seconds`` (a sliding window)."""

    def __init__(self, clock: Clock, *, interval_seconds: float, burst: int = 1) -> None:
        if burst < 1 or interval_seconds < 0:
            raise ValueError("burst must be >= 1 and the interval >= 0")
        self._clock = clock
        self.interval_seconds = interval_seconds
        self._burst = burst
        self._recent: collections.deque[float] = collections.deque()

    def try_acquire(self) -> bool:
        now = self._clock.now()
        while self._recent and now - self._recent[0] >= self.interval_seconds:
            self._recent.popleft()
        if len(self._recent) >= self._burst:
            return False
        self._recent.append(now)
        return True


class KeyFetchError(Exception):
    """A key endpoint failed; ``missing`` when it said the key does not exist (4xx)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class OutboundHttp:
    """GETs to key and identity endpoints: bounded time, no redirects.

    The client is created on first use and again after ``aclose`` (the app's lifespan
    closes it on shutdown; a test client may run the lifespan more than once).
    """

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _current(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(HTTP_TIMEOUT_SECONDS),
                follow_redirects=False,
            )
        return self._client

    async def get(
        self, url: str, *, what: str, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """GET ``url``; a network failure or a non-200 answer is a ``KeyFetchError``."""
        try:
            response = await self._current().get(url, headers=dict(headers or {}))
        except httpx.TimeoutException as exc:
            raise KeyFetchError(f"{what} at {url} timed out") from exc
        except httpx.HTTPError as exc:
            raise KeyFetchError(f"{what} at {url} failed ({exc.__class__.__name__})") from exc
        if response.status_code != 200:
            raise KeyFetchError(
                f"{what} at {url} answered {response.status_code}",
                missing=400 <= response.status_code < 500,
            )
        return response

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RemoteJwks:
    """A JWKS document: fetched on first use, cached for ``ttl_seconds``, reloaded when a
    token names an unknown ``kid`` (rate-limited by ``limiter``)."""

    def __init__(
        self,
        *,
        url: str,
        http: OutboundHttp,
        clock: Clock,
        what: str,
        ttl_seconds: float = KEY_CACHE_TTL_SECONDS,
        refetch_interval_seconds: float = KEY_REFETCH_INTERVAL_SECONDS,
    ) -> None:
        self.url = url
        self._http = http
        self._clock = clock
        self._what = what
        self._ttl = ttl_seconds
        self._limiter = FetchLimiter(clock, interval_seconds=refetch_interval_seconds)
        self._keys: KeySet | None = None
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def key_for(self, kid: str) -> PublicKey | None:
        """The key with this ``kid``, or None when the (possibly reloaded) set lacks it.

        Raises:
            ServiceUnavailableError: when no keys could be fetched.
        """
        async with self._lock:
            return await self._key_for(kid)

    async def _key_for(self, kid: str) -> PublicKey | None:
        now = self._clock.now()
        if self._keys is None:
            if not self._limiter.try_acquire():
                raise ServiceUnavailableError(
                    f"The {self._what} are unavailable; the last fetch failed and is retried "
                    f"at most every {self._limiter.interval_seconds:g} seconds"
                )
            await self._load(now)
        elif now - self._loaded_at >= self._ttl and self._limiter.try_acquire():
            try:
                await self._load(now)
            except ServiceUnavailableError as exc:
                log.warning("keeping cached keys: %s", exc.message)
        key = self._find(kid)
        if key is None and self._limiter.try_acquire():
            await self._load(now)
            key = self._find(kid)
        return key

    def _find(self, kid: str) -> PublicKey | None:
        assert self._keys is not None
        for key in self._keys:
            if key.kid == kid and isinstance(key, ECKey | RSAKey):
                return key
        return None

    async def _load(self, now: float) -> None:
        self.fetch_count += 1
        try:
            response = await self._http.get(self.url, what=f"Fetching the {self._what}")
            document = response.json()
            if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
                raise ValueError("not a JWK set")
            # Private members, if any, are never imported: only public parameters count.
            keys = KeySet.import_key_set({"keys": document["keys"]})
        except KeyFetchError as exc:
            raise ServiceUnavailableError(str(exc)) from exc
        except (ValueError, JoseError) as exc:
            raise ServiceUnavailableError(
                f"The {self._what} at {self.url} are not a usable JWK set"
            ) from exc
        self._keys = keys
        self._loaded_at = now


# -- JWT verification -----------------------------------------------------------------------


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


def check_header(token: CompactJws, *, what: str, algorithms: Collection[str]) -> str:
    """Checks ``alg`` against the allowlist and refuses embedded keys; returns the ``kid``.

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
    try:
        jws.JWSRegistry(algorithms=list(algorithms), strict_check_header=False).check_header(
            token.header
        )
    except JoseError as exc:
        raise AuthenticationError(f"The {what} has an invalid header ({exc.error})") from exc
    kid = token.header.get("kid")
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


async def verify_jwt(
    token: str,
    *,
    what: str,
    algorithms: Collection[str],
    key_for: KeyLookup,
    allow_padding: bool = False,
) -> CompactJws:
    """Parse, check the header, find the key by ``kid``, verify the signature.

    Claims are returned unchecked: callers run ``validate_claims`` with their rules.
    """
    parsed = parse_compact(token, what=what, allow_padding=allow_padding)
    kid = check_header(parsed, what=what, algorithms=algorithms)
    key = await key_for(kid)
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
