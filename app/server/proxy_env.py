"""Which outbound requests go through a forward proxy: the environment's proxy variables.

Backstage operators set ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (Node's env-proxy
support, curl, Go and Python all read them), so this server reads the same ones:

* ``HTTPS_PROXY`` for ``https://`` URLs, ``HTTP_PROXY`` for ``http://`` URLs, ``ALL_PROXY``
  for either when the specific one is unset; the lower-case form wins over the upper-case
  one when both are set (as curl and Python's urllib read them).
* ``NO_PROXY``: comma- or space-separated; ``*`` bypasses the proxy for every host; a name
  (``example.com`` or ``.example.com``) matches that host and every subdomain of it; a
  ``host:port`` entry only that port; an IP address or CIDR range (``10.0.0.0/8``,
  ``fd00::/8``) matches IP-literal hosts inside it (names are not resolved to check).

Python's ``urllib.request.proxy_bypass_environment`` has no CIDR ranges, so the matching is
here; the variables are read as urllib reads them (lower case wins; ``HTTP_PROXY`` is
ignored when ``REQUEST_METHOD`` is set, the "httpoxy" rule).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

_Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class NoProxyRule:
    host: str = ""
    port: int | None = None
    network: _Network | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False
        return host == self.host or host.endswith("." + self.host)


def _rule(entry: str) -> NoProxyRule | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    try:
        return NoProxyRule(network=ipaddress.ip_network(entry.strip("[]"), strict=False))
    except ValueError:
        pass
    host, port = entry, None
    if entry.startswith("["):  # [::1]:8080
        literal, _, rest = entry[1:].partition("]")
        host = literal
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        try:
            return NoProxyRule(network=ipaddress.ip_network(host, strict=False), port=port)
        except ValueError:
            return None
    if entry.count(":") == 1:
        name, _, digits = entry.partition(":")
        if digits.isdigit():
            host, port = name, int(digits)
    host = host.lstrip("*").lstrip(".")
    return NoProxyRule(host=host, port=port) if host else None


@dataclass(frozen=True)
class ProxyRules:
    """The proxy, if any, for each outbound URL."""

    proxies: Mapping[str, str] = field(default_factory=dict)
    bypass_all: bool = False
    no_proxy: tuple[NoProxyRule, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProxyRules:
        proxies = _read_proxies(environ)
        no_proxy = proxies.pop("no", "")
        entries = [e for e in no_proxy.replace(" ", ",").split(",") if e.strip()]
        rules = tuple(r for r in (_rule(e) for e in entries) if r is not None)
        return cls(
            proxies={k: v for k, v in proxies.items() if k in ("http", "https", "all")},
            bypass_all="*" in (e.strip() for e in entries),
            no_proxy=rules,
        )

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for ``url``, or ``None`` for a direct connection."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        proxy = self.proxies.get(scheme) or self.proxies.get("all")
        if not proxy or self.bypass_all:
            return None
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        if any(rule.matches(host, port) for rule in self.no_proxy):
            return None
        return proxy if "://" in proxy else f"http://{proxy}"

    def describe(self, url: str) -> str:
        """What ``check-config`` prints for an outbound URL: the proxy, or why none."""
        proxy = self.proxy_for(url)
        if proxy is not None:
            return f"via proxy {_without_credentials(proxy)}"
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if self.proxies.get(scheme) or self.proxies.get("all"):
            return "direct (NO_PROXY)"
        return "direct"


def _read_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    proxies: dict[str, str] = {}
    # Upper case first, lower case over it: the lower-case form wins.
    for name, value in environ.items():
        if value and name.endswith("_PROXY") and name.lower() != name:
            proxies[name[:-6].lower()] = value
    for name, value in environ.items():
        if value and name.endswith("_proxy") and name.lower() == name:
            proxies[name[:-6]] = value
    if "REQUEST_METHOD" in environ:
        proxies.pop("http", None)
    return proxies


def _without_credentials(proxy: str) -> str:
    parts = urllib.parse.urlsplit(proxy)
    if parts.username is None and parts.password is None:
        return proxy
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
