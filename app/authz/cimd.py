"""Clients identified by a Client ID Metadata Document: which ids are allowed, the
document (fetched through ``cimd_fetch``, checked by ``cimd_rules``) and its cache.

Backstage fetches the document on every ``/v1/authorize`` and ``/v1/sessions/{id}``.
Here documents are cached, bounded in entries and bytes: for ``Cache-Control: max-age``
within [0, MAX_TTL] (DEFAULT_TTL without one), failures for NEGATIVE_TTL. One fetch per
client id at a time (concurrent callers share it) and FETCH_CONCURRENCY fetches in all,
so a flood of made-up ids cannot make this server hammer the hosts they name.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import SplitResult

from app.authz.cimd_fetch import (
    FETCH_TIMEOUT_SECONDS,
    ProxyFor,
    Resolver,
    direct,
    fetch_document,
    parse_document,
    system_resolver,
)
from app.authz.cimd_rules import (
    MetadataClient,
    check_redirect_uri,
    is_development_local,
    registered_redirect_uri,
    validate_client_id_url,
    validate_metadata,
)
from app.config.client_metadata import ClientMetadataSettings
from app.config.url_patterns import is_exact, url_matcher, url_parts
from app.core.clock import Clock
from app.core.errors import InputError

DEFAULT_TTL = 300
MAX_TTL = 3600
NEGATIVE_TTL = 30
MAX_ENTRIES = 1000
MAX_BYTES = 8 * 1024 * 1024
FETCH_CONCURRENCY = 8


@dataclass(frozen=True)
class _Entry:
    expires_at: float
    size: int
    client: MetadataClient | None = None
    error: str | None = None


class ClientMetadataDocuments:
    def __init__(
        self,
        settings: ClientMetadataSettings,
        *,
        auth_base_url: str,
        clock: Clock,
        development: bool,
        resolver: Resolver = system_resolver,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        proxy_for: ProxyFor = direct,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``proxy_for``: the server's proxy decision (``HTTPS_PROXY``/``NO_PROXY``);
        ``tls``: the server's trusted authorities (None: the system's)."""
        self._patterns = [
            (pattern, url_matcher(pattern))
            for pattern in settings.client_id_patterns_for(auth_base_url)
        ]
        self._redirects = [url_matcher(p) for p in settings.redirect_uri_patterns]
        self._clock = clock
        self._development = development
        self._resolver = resolver
        self._timeout = timeout
        self._proxy_for = proxy_for
        self._tls = tls
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[str, asyncio.Task[_Entry]] = {}
        self._slots = asyncio.Semaphore(FETCH_CONCURRENCY)
        self.fetches = 0  # documents requested from their hosts (a metric for tests)

    def _matching_pattern(self, url: SplitResult) -> str | None:
        parts = url_parts(url.geturl())
        if parts is None:
            return None
        return next((pattern for pattern, matches in self._patterns if matches(parts)), None)

    def allows(self, client_id: str) -> bool:
        """A client id that may revoke with its id alone: no document fetched, so tokens
        can be revoked when the document is gone."""
        try:
            url = validate_client_id_url(client_id, development=self._development)
        except InputError:
            return False
        return self._matching_pattern(url) is not None

    async def resolve(self, client_id: str, redirect_uri: str | None = None) -> MetadataClient:
        """Raises InputError with Backstage's messages."""
        url = validate_client_id_url(client_id, development=self._development)
        pattern = self._matching_pattern(url)
        if pattern is None:
            raise InputError(f"Invalid client_id '{client_id}'")
        check = not is_exact(pattern) and not is_development_local(
            url, development=self._development
        )
        entry = await self._document(client_id, url, check)
        if entry.client is None:
            raise InputError(entry.error or "Failed to fetch client metadata")
        if redirect_uri is not None:
            check_redirect_uri(redirect_uri, self._redirects)
            if not registered_redirect_uri(redirect_uri, entry.client.redirect_uris):
                raise InputError(
                    f"Invalid redirect_uri '{redirect_uri}', not registered in client metadata"
                )
        return entry.client

    async def _document(self, client_id: str, url: SplitResult, check: bool) -> _Entry:
        cached = self._cache.get(client_id)
        if cached is not None and cached.expires_at > self._clock.now():
            self._cache.move_to_end(client_id)
            return cached
        # The fetch is a task of its own: a caller that goes away (a closed connection)
        # neither cancels it for the others nor loses its result for the cache.
        task = self._inflight.get(client_id)
        if task is None:
            task = asyncio.create_task(self._fetch_and_store(client_id, url, check))
            self._inflight[client_id] = task
            task.add_done_callback(lambda done: self._finished(client_id, done))
        return await asyncio.shield(task)

    def _finished(self, client_id: str, task: asyncio.Task[_Entry]) -> None:
        self._inflight.pop(client_id, None)
        if not task.cancelled():
            task.exception()  # retrieved, even when every caller went away

    async def _fetch_and_store(self, client_id: str, url: SplitResult, check: bool) -> _Entry:
        entry = await self._fetch(client_id, url, check)
        self._store(client_id, entry)
        return entry

    async def _fetch(self, client_id: str, url: SplitResult, check: bool) -> _Entry:
        async with self._slots:
            self.fetches += 1
            now = self._clock.now()
            try:
                fetched = await fetch_document(
                    url,
                    resolver=self._resolver,
                    check_addresses=check,
                    timeout=self._timeout,
                    proxy=self._proxy_for(url.geturl()),
                    tls=self._tls,
                )
                client = validate_metadata(parse_document(fetched.body), client_id)
            except InputError as exc:
                return _Entry(now + NEGATIVE_TTL, len(client_id), error=exc.message)
        ttl = DEFAULT_TTL if fetched.max_age is None else min(fetched.max_age, MAX_TTL)
        return _Entry(now + ttl, len(fetched.body) + len(client_id), client=client)

    def _store(self, client_id: str, entry: _Entry) -> None:
        old = self._cache.pop(client_id, None)
        if old is not None:
            self._bytes -= old.size
        if entry.expires_at <= self._clock.now():
            return
        self._cache[client_id] = entry
        self._bytes += entry.size
        while len(self._cache) > MAX_ENTRIES or self._bytes > MAX_BYTES:
            _, evicted = self._cache.popitem(last=False)
            self._bytes -= evicted.size
