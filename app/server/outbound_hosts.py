"""The outbound hosts a configuration makes the server call, and how each is reached.

``check-config`` prints one line per host: through which proxy (``HTTPS_PROXY`` and
friends) or direct, so an operator behind a corporate proxy sees before the first sign-in
whether ``NO_PROXY`` says what they meant. The hosts are the URLs in each provider's
config that the *server* fetches (discovery, token, user info, keys) and the remote
catalog; the URLs the browser follows (callback, redirect, logout) are left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from app.config.discovery import OWN_PLUGIN_ID, Discovery
from app.server.proxy_env import ProxyRules

# Keys whose URLs the browser, not the server, visits.
_BROWSER_KEYS = ("callback", "redirect", "logout", "authorization", "signin", "sign_in")


def _urls(config: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(config, Mapping):
        for key, value in config.items():
            if any(part in str(key).lower() for part in _BROWSER_KEYS):
                continue
            yield from _urls(value, f"{path}.{key}")
    elif isinstance(config, str) and urlsplit(config).scheme in ("http", "https"):
        if urlsplit(config).hostname:
            yield path, config


def outbound_urls(
    raw: Mapping[str, Any], discovery: Discovery | None = None
) -> list[tuple[str, str]]:
    """(config key, URL) for each URL the server calls, first key per origin. With
    ``discovery`` naming ``auth`` and no ``auth.catalog.remote``, the catalog found
    through discovery too (app.identity.catalog_config's rule)."""
    auth = raw.get("auth")
    auth = auth if isinstance(auth, Mapping) else {}
    found: dict[str, tuple[str, str]] = {}
    for section in ("providers", "catalog"):
        for key, url in _urls(auth.get(section), f"auth.{section}"):
            parts = urlsplit(url)
            found.setdefault(f"{parts.scheme}://{parts.netloc}", (key, url))
    catalog = auth.get("catalog")
    remote = catalog.get("remote") if isinstance(catalog, Mapping) else None
    if remote is None and discovery is not None and discovery.configured(OWN_PLUGIN_ID):
        url = discovery.internal("catalog")
        parts = urlsplit(url)
        found.setdefault(f"{parts.scheme}://{parts.netloc}", ("discovery (catalog)", url))
    return list(found.values())


def outbound_lines(
    raw: Mapping[str, Any], proxies: ProxyRules, trust: str, discovery: Discovery | None = None
) -> list[str]:
    urls = outbound_urls(raw, discovery)
    if not urls:
        return []
    lines = [
        "",
        f"outbound TLS trust: {trust}",
        "outbound hosts (HTTPS_PROXY / HTTP_PROXY / NO_PROXY):",
    ]
    for key, url in urls:
        parts = urlsplit(url)
        lines.append(f"  {parts.scheme}://{parts.netloc}: {proxies.describe(url)} ({key})")
    return lines
