"""URL patterns of ``auth.clientIdMetadataDocuments`` (Backstage's
``createUrlPatternMatcher``): matched per URL component, so a ``*`` in the host stays in
the host and one in the path stays in the path; ``:*`` matches any port; ``*`` alone
matches every URL; the scheme is required."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.config.validation import ConfigError

_WILDCARD_PORT = re.compile(r":\*(?=/|$)")
_EXPLICIT_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


@dataclass(frozen=True)
class UrlParts:
    scheme: str
    hostname: str
    port: int | None  # None: the scheme's default port, as WHATWG's ``url.port == ""``
    path: str


def url_parts(url: str) -> UrlParts | None:
    """The components patterns match; None for a URL that does not parse."""
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return None
    scheme = split.scheme.lower()
    if not scheme:
        return None
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    return UrlParts(scheme, (split.hostname or "").lower(), port, split.path or "/")


def _glob(pattern: str) -> re.Pattern[str]:
    # The ``matcher`` package: ``*`` is any run of characters, case-insensitive.
    return re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.IGNORECASE)


UrlMatcher = Callable[[UrlParts], bool]


def url_matcher(pattern: str) -> UrlMatcher:
    """Raises ConfigError (Backstage's message) for a pattern that is no URL."""
    if pattern == "*":
        return lambda _url: True
    if not _EXPLICIT_SCHEME.match(pattern):
        raise ConfigError(f"Invalid URL pattern '{pattern}', an explicit protocol is required")
    any_port = "://" in pattern and bool(_WILDCARD_PORT.search(pattern))
    parts = url_parts(_WILDCARD_PORT.sub(":1", pattern) if any_port else pattern)
    if parts is None:
        raise ConfigError(f"Invalid URL pattern '{pattern}'")
    host = _glob(parts.hostname or "*")
    path = _glob(parts.path or "*")

    def matches(url: UrlParts) -> bool:
        return (
            url.scheme == parts.scheme
            and host.fullmatch(url.hostname) is not None
            and (any_port or url.port == parts.port)
            and path.fullmatch(url.path) is not None
        )

    return matches


def is_exact(pattern: str) -> bool:
    """Backstage trusts a client id matched by a pattern without wildcards (no SSRF
    check): the operator named that document."""
    return "*" not in pattern and "?" not in pattern
