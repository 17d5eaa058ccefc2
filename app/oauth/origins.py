"""Origin parsing and the app-origin allow-list.

Backstage compares ``new URL(x).origin`` with ``app.baseUrl``'s origin and matches
``auth.experimentalExtraAllowedOrigins`` globs (minimatch) against the whole origin
string. We keep the pattern syntax (``*``, ``?``, ``{a,b}``) but match scheme, host and
port separately on parsed, normalised values, so that a wildcard can never span a dot,
a port or userinfo (the allow-list bypasses behind Backstage's and oauth2-proxy's CVEs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import idna

from app.core.errors import InputError, NotAllowedError

_DEFAULT_PORTS = {"http": 80, "https": 443}
# WHATWG URL parsing treats these specially (or strips them); we refuse them instead of
# guessing which host a browser would see.
_SUSPICIOUS = re.compile(r"[\x00-\x20\x7f\\]")
# What the spec accepts as /start's origin: an absolute URL with an authority, without
# spaces or backslashes (written out in spec/openapi.yaml, where a test keeps it equal;
# no needless escape, so that ECMAScript regular expressions accept it too; everything it
# admits parses).
ORIGIN_QUERY_PATTERN = r'^[A-Za-z][A-Za-z0-9+.-]*://[!-"$-.0->@-Z^-~]+(/[!-[\]-~]*)?$'
_FORBIDDEN_HOST = re.compile(r"[%<>^|#/?@\[\]:*\"'`{}]")


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str  # lower-case ASCII (IDNA), no brackets for IPv6
    port: int | None  # None when it is the scheme's default

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port is not None else "")


def parse_origin(value: str) -> Origin | None:
    """Parse the origin of an absolute http(s) URL; None if it is not one.

    Any path, query or fragment is ignored, as ``new URL(value).origin`` does.
    """
    if not value or _SUSPICIOUS.search(value):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc or parts.hostname is None:
        return None
    if "@" in parts.netloc:
        # Userinfo is the classic "https://allowed.com@evil.com" trick.
        return None
    host = _ascii_host(parts.hostname)
    if host is None:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return Origin(scheme, host, port)


# What a browser leaves as it is in a URL: printable ASCII but the space.
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def ascii_url(value: str) -> str:
    """``value`` as a browser sends it: the host in IDNA, every other non-ASCII character
    percent-encoded as UTF-8 (WHATWG URL). A ``Location`` header is ASCII: a redirect to
    ``http://localhost:3000/€`` is ``.../%E2%82%AC``, as the browser would request it."""
    if value.isascii():
        return value
    parts = urlsplit(value)
    if not parts.netloc.isascii():
        host = _ascii_host(parts.hostname or "")
        port = f":{parts.port}" if parts.port is not None else ""
        # A host no browser accepts was refused by the origin checks; escaped, it stays
        # a (broken) ASCII URL rather than a header that cannot be sent.
        netloc = host + port if host is not None else quote(parts.netloc, safe=_URL_SAFE)
        value = value.replace(parts.netloc, netloc, 1)
    # Quoting the string, not re-joining its parts, keeps an empty "?" or "#" as it was.
    return quote(value, safe=_URL_SAFE)


def parses_as_url(value: str) -> bool:
    """Roughly what ``new URL(value)`` accepts: a scheme, and a host for http(s)."""
    if _SUSPICIOUS.search(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if not parts.scheme:
        return False
    return parts.scheme.lower() not in _DEFAULT_PORTS or bool(parts.netloc)


def _ascii_host(hostname: str) -> str | None:
    """The host as a browser resolves it, or None when a browser would refuse it."""
    if ":" in hostname:
        try:
            return ipaddress.IPv6Address(hostname).compressed
        except ValueError:
            return None
    if hostname.isascii():
        host = hostname.lower()
    else:
        # IDNA 2008 with UTS #46 (non-transitional), as browsers do: Python's own codec
        # is IDNA 2003, which folds "ß" to "ss" and so names a different domain.
        try:
            host = idna.encode(hostname, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return None
    # Percent-escapes are decoded by browsers ("a%2eb" is "a.b"), so a wildcard could
    # span a dot; these and the other characters WHATWG forbids in hosts are refused.
    if _FORBIDDEN_HOST.search(host):
        return None
    labels = host.removesuffix(".").split(".")
    if not all(0 < len(label) <= 63 for label in labels):
        return None
    return host


def _glob_to_regex(pattern: str, *, any_char: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(f"{any_char}*")
        elif c == "?":
            out.append(any_char)
        elif c == "{":
            end = pattern.find("}", i)
            if end == -1:
                out.append(re.escape(c))
            else:
                alternatives = pattern[i + 1 : end].split(",")
                out.append(
                    "(?:"
                    + "|".join(_glob_to_regex(a, any_char=any_char) for a in alternatives)
                    + ")"
                )
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class OriginPattern:
    scheme: re.Pattern[str]
    host: re.Pattern[str]
    port: re.Pattern[str]

    @classmethod
    def compile(cls, pattern: str) -> OriginPattern:
        """Compile a Backstage origin glob such as ``https://*.example.com``.

        Raises:
            ValueError: when the pattern is not ``scheme://host[:port]``.
        """
        m = re.fullmatch(r"([^:/]+)://(\[[^\]]+\]|[^:/]+)(?::([^/]+))?/?", pattern.strip())
        if not m:
            raise ValueError(f"'{pattern}' is not an origin pattern (scheme://host[:port])")
        scheme, host, port = m.group(1), m.group(2).strip("[]"), m.group(3)
        return cls(
            scheme=re.compile(_glob_to_regex(scheme.lower(), any_char="[a-z]"), re.I),
            # A host wildcard stays inside one DNS label.
            host=re.compile(_glob_to_regex(host.lower(), any_char="[^.]"), re.I),
            port=re.compile(_glob_to_regex(port or "", any_char="[0-9]")),
        )

    def matches(self, origin: Origin) -> bool:
        port = "" if origin.port is None else str(origin.port)
        default_port = str(_DEFAULT_PORTS[origin.scheme])
        return bool(
            self.scheme.fullmatch(origin.scheme)
            and self.host.fullmatch(origin.host)
            and (self.port.fullmatch(port) or (port == "" and self.port.fullmatch(default_port)))
        )


class OriginFilter:
    """Is an origin the app's own or one of the extra allowed patterns?"""

    def __init__(self, app_origin: Origin, extra_patterns: Iterable[str] = ()) -> None:
        self.app_origin = app_origin
        self._patterns = [OriginPattern.compile(p) for p in extra_patterns]

    def is_allowed(self, origin: Origin) -> bool:
        return origin == self.app_origin or any(p.matches(origin) for p in self._patterns)

    def check_app_origin(self, raw: str, *, invalid: type[Exception] = InputError) -> Origin:
        """Validate an app origin (``origin`` query or state field).

        Raises:
            InputError (or ``invalid``): not an absolute URL, "App origin is invalid,
                failed to parse".
            NotAllowedError: "Origin '<origin>' is not allowed" (any URL whose origin is
                not allowed, including ones whose host a browser would refuse).
        """
        if not parses_as_url(raw):
            raise invalid("App origin is invalid, failed to parse")
        origin = parse_origin(raw)
        if origin is None or not self.is_allowed(origin):
            # A URL without a tuple origin (javascript:, ftp:) serializes as "null".
            special = urlsplit(raw).scheme.lower() in _DEFAULT_PORTS
            shown = str(origin) if origin else (raw if special else "null")
            raise NotAllowedError(f"Origin '{shown}' is not allowed")
        return origin

    def check_redirect_url(self, raw: str | None, *, invalid: type[Exception] = InputError) -> str:
        """Validate a redirect-flow ``redirectUrl``; returns it unchanged.

        Raises:
            InputError (or ``invalid``): missing or unparsable.
            NotAllowedError: "Redirect URL is not an allowed origin".
        """
        if not raw:
            raise invalid("No redirectUrl provided in request query parameters")
        if not parses_as_url(raw):
            raise invalid("Redirect URL is invalid, failed to parse")
        origin = parse_origin(raw)
        if origin is None or not self.is_allowed(origin):
            raise NotAllowedError("Redirect URL is not an allowed origin")
        return raw

    def check_header_origin(self, raw: str | None) -> None:
        """The ``Origin`` request header on logout: refused unless allowed.

        Raises:
            NotAllowedError: "Origin '<raw>' is not allowed".
        """
        if raw is None:
            return
        origin = parse_origin(raw)
        if origin is None or not self.is_allowed(origin):
            raise NotAllowedError(f"Origin '{raw}' is not allowed")


def absolute_http_url(value: str) -> str:
    """``value`` when it is an absolute http(s) URL (config validators use it).

    Raises:
        ValueError: naming the value.
    """
    if parse_origin(value) is None:
        raise ValueError(f"'{value}' is not an absolute http(s) URL")
    return value
