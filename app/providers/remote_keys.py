"""Signing keys fetched from identity providers and proxies (JWKS documents).

* ``OutboundHttp``: GETs to key and identity endpoints (timeouts, no redirects).
* ``FetchLimiter``: a sliding-window budget of fetches.
* ``RemoteJwks``: a JWKS fetched on first use, cached, reloaded on an unknown ``kid`` at
  most once per interval (an attacker's made-up ``kid`` values must not turn into a
  stream of requests to the key endpoint). Used by ``oidc`` for the IdP's ID-token keys
  and by ``gcpIap`` and ``cfaccess``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping
from typing import TypeAlias

import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from app.core.clock import Clock
from app.core.errors import ServiceUnavailableError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

# Fetched keys are reused this long before a reload.
KEY_CACHE_TTL_SECONDS = 3600.0
# An unknown kid reloads the keys at most once per this interval.
KEY_REFETCH_INTERVAL_SECONDS = 30.0

PublicKey: TypeAlias = ECKey | RSAKey | OKPKey


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

    def __init__(
        self,
        transport: httpx2.AsyncBaseTransport | None = None,
        *,
        timeout_seconds: float = OUTBOUND_TIMEOUT_SECONDS,
    ) -> None:
        self._transport = transport
        self.timeout_seconds = timeout_seconds
        self._client: httpx2.AsyncClient | None = None

    def _current(self) -> httpx2.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx2.AsyncClient(
                transport=self._transport,
                timeout=httpx2.Timeout(self.timeout_seconds),
                follow_redirects=False,
            )
        return self._client

    async def get(
        self, url: str, *, what: str, headers: Mapping[str, str] | None = None
    ) -> httpx2.Response:
        """GET ``url``; a network failure or a non-200 answer is a ``KeyFetchError``."""
        # httpx's figure is per phase (connect, each read): the whole call is bounded too.
        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await self._current().get(url, headers=dict(headers or {}))
        except (httpx2.TimeoutException, TimeoutError) as exc:
            raise KeyFetchError(
                f"{what} at {url} timed out after {self.timeout_seconds:g} seconds"
            ) from exc
        except httpx2.HTTPError as exc:
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

    async def key_for(self, kid: str | None) -> PublicKey | None:
        """The key with this ``kid``, or None when the (possibly reloaded) set lacks it.
        Without a ``kid``, the set's only key (OIDC Core 10.1), or None when it has several.

        A cached key is answered without waiting: only a miss, a first load or an
        expired set waits for the one fetch in flight.

        Raises:
            ServiceUnavailableError: when no keys could be fetched.
        """
        now = self._clock.now()
        if self._keys is not None and now - self._loaded_at < self._ttl:
            key = self._find(kid)
            if key is not None:
                return key
        async with self._lock:
            return await self._key_for(kid)

    async def _key_for(self, kid: str | None) -> PublicKey | None:
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
        if key is None and kid is not None and self._limiter.try_acquire():
            await self._load(now)
            key = self._find(kid)
        return key

    async def all_keys(self) -> tuple[PublicKey, ...]:
        """Every public key of the set, for a token that names none (jose tries each key
        that fits). Loaded or reloaded as ``key_for`` does; never an extra fetch.

        Raises:
            ServiceUnavailableError: when no keys could be fetched.
        """
        if self._keys is None or self._clock.now() - self._loaded_at >= self._ttl:
            async with self._lock:
                await self._key_for(None)
        return self._public()

    def _public(self) -> tuple[PublicKey, ...]:
        return tuple(k for k in self._keys or () if isinstance(k, ECKey | RSAKey | OKPKey))

    def _find(self, kid: str | None) -> PublicKey | None:
        keys = self._public()
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        for key in keys:
            if key.kid == kid:
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
