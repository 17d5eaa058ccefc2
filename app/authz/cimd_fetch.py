"""Fetching a Client ID Metadata Document (Backstage's ``CimdClient``): GET with
``Accept: application/json``, 10 s, at most 64 KiB, no redirects.

No DNS-rebinding window: the host is resolved once, every address is checked (when the
client id needs the check), and the connection goes to those addresses and no others
(aiohttp asks a resolver that only knows them), with the original host name for the
``Host`` header, SNI and the certificate check. Backstage resolves to check and lets the
fetch resolve again, so a name that answers a public address first and an internal one
second passes its check.

Behind a forward proxy (``HTTPS_PROXY``/``HTTP_PROXY``, unless ``NO_PROXY`` names the host:
the server's one decision, ``proxy``), the proxy connects, by name: the address check
still runs on the URL's host before anything is sent, and a refused host never reaches
the proxy, but the proxy resolves the name again, so rebinding between the check and its
connect, and which addresses it may reach at all, are the proxy's to enforce (README,
"Behind a corporate network").
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from app.core.errors import InputError

FETCH_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024

# host, port -> the addresses it resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]
# A URL -> the forward proxy to fetch it through, or None for a direct connection.
ProxyFor = Callable[[str], str | None]

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """Global unicast only (ipaddr.js's ``unicast`` range): no loopback, private,
    link-local, shared, reserved, documentation or IPv4-mapped addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return False
    return ip.is_global and not ip.is_multicast


class _PinnedResolver(AbstractResolver):
    """Answers aiohttp with the addresses that were checked, for that host only."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self._host = host
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"no pinned address for {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._addresses
        ]

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class FetchedDocument:
    body: bytes
    max_age: int | None  # from Cache-Control; 0 for no-store / no-cache


def _max_age(header: str | None) -> int | None:
    if not header:
        return None
    if _NO_CACHE.search(header):
        return 0
    match = _MAX_AGE.search(header)
    return int(match.group(1)) if match else None


async def _addresses(url: SplitResult, resolver: Resolver, check: bool) -> list[str]:
    host = url.hostname or ""
    try:
        addresses = await resolver(host, url.port or (443 if url.scheme == "https" else 80))
    except (OSError, UnicodeError) as exc:
        raise InputError("Failed to fetch client metadata") from exc
    if not addresses:
        raise InputError("Failed to fetch client metadata")
    if check and not all(is_public(a) for a in addresses):
        raise InputError("Invalid client_id URL")
    return addresses


def direct(url: str) -> str | None:
    return None


async def fetch_document(
    url: SplitResult,
    *,
    resolver: Resolver = system_resolver,
    check_addresses: bool = True,
    timeout: float = FETCH_TIMEOUT_SECONDS,
    proxy: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> FetchedDocument:
    """Raises InputError with Backstage's messages. ``proxy``: the forward proxy to go
    through (None: direct, to the checked addresses); ``tls``: the trusted authorities
    (None: the system's)."""
    proxy_url: URL | None = None
    proxy_auth: aiohttp.BasicAuth | None = None
    if proxy is None:
        addresses = await _addresses(url, resolver, check_addresses)
        connector = aiohttp.TCPConnector(
            resolver=_PinnedResolver(url.hostname or "", addresses),
            use_dns_cache=False,
            ssl=tls or True,
        )
    else:
        # The check before anything is sent; the proxy resolves and connects.
        if check_addresses:
            await _addresses(url, resolver, check_addresses)
        connector = aiohttp.TCPConnector(ssl=tls or True)
        proxy_url = URL(proxy)
        if proxy_url.user is not None:
            proxy_auth = aiohttp.BasicAuth.from_url(proxy_url)
            proxy_url = proxy_url.with_user(None)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector,
                # The proxy is decided by the caller (the server's one reading of the
                # environment), never again here.
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as session,
            session.get(
                url.geturl(),
                headers={"Accept": "application/json"},
                allow_redirects=False,
                proxy=proxy_url,
                proxy_auth=proxy_auth,
            ) as response,
        ):
            if response.status < 200 or response.status >= 300:
                raise InputError("Failed to fetch client metadata")
            if (response.content_length or 0) > MAX_RESPONSE_BYTES:
                raise InputError("Client metadata document too large")
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise InputError("Client metadata document too large")
            return FetchedDocument(bytes(body), _max_age(response.headers.get("Cache-Control")))
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise InputError("Failed to fetch client metadata") from exc


def parse_document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("Invalid client metadata document") from exc
    if not isinstance(document, dict):
        # Backstage fails with a TypeError (a 500) on ``null``; any non-object is refused.
        raise InputError("Invalid client metadata document")
    return document
