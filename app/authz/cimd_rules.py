"""The rules of Client ID Metadata Documents (Backstage's ``CimdClient`` and
``OidcService``): what a client id URL may be, what a document must hold, which redirect
URIs a document's client may use. Backstage's messages (400 InputError)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from app.config.authorization import can_parse_url
from app.config.url_patterns import UrlMatcher, url_parts
from app.core.errors import InputError

# Dot segments, also percent-encoded: a URL parser removes them, so the URL fetched would
# not be the client id the document must name.
_DOT_SEGMENT = re.compile(r"/(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)
_DEV_HOSTS = frozenset({"localhost", "127.0.0.1"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
FORBIDDEN_AUTH_METHODS = frozenset(
    {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
)


@dataclass(frozen=True)
class MetadataClient:
    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]


def validate_client_id_url(client_id: str, *, development: bool) -> SplitResult:
    if _DOT_SEGMENT.search(client_id.split("?", 1)[0].split("#", 1)[0]):
        raise InputError("Invalid client_id: path must not contain dot segments")
    try:
        url = urlsplit(client_id)
        url.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InputError("Invalid client_id: not a valid URL") from None
    if not can_parse_url(client_id) or not url.hostname or any(c.isspace() for c in client_id):
        raise InputError("Invalid client_id: not a valid URL")
    scheme = url.scheme.lower()
    local_http = scheme == "http" and development and url.hostname in _DEV_HOSTS
    if scheme != "https" and not local_http:
        raise InputError("Invalid client_id: must use HTTPS (or HTTP for localhost in development)")
    if url.path in ("", "/"):
        raise InputError("Invalid client_id: must have a path component")
    if url.fragment:
        raise InputError("Invalid client_id: must not contain a fragment")
    if url.username is not None or url.password is not None:
        raise InputError("Invalid client_id: must not contain credentials")
    if url.query:
        raise InputError("Invalid client_id: must not contain a query string")
    return url


def is_development_local(url: SplitResult, *, development: bool) -> bool:
    """Backstage skips the address check for localhost in development."""
    return development and url.hostname in _DEV_HOSTS


def validate_metadata(document: dict[str, Any], client_id: str) -> MetadataClient:
    if document.get("client_id") != client_id:
        raise InputError("Client ID mismatch in metadata document")
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise InputError("Metadata must include at least one redirect_uri")
    for uri in uris:
        if not isinstance(uri, str) or not can_parse_url(uri):
            raise InputError(f"Invalid redirect_uri in metadata: {uri}")
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise InputError("Client metadata must not contain client_secret")
    if document.get("token_endpoint_auth_method") in FORBIDDEN_AUTH_METHODS:
        raise InputError("Client metadata uses forbidden auth method")
    name = document.get("client_name")
    return MetadataClient(
        client_id=client_id,
        client_name=name if isinstance(name, str) and name else client_id,
        redirect_uris=tuple(uris),
    )


def check_redirect_uri(redirect_uri: str, allowed: Sequence[UrlMatcher]) -> None:
    """The operator's patterns (loopback by default)."""
    try:
        split = urlsplit(redirect_uri)
        normalized = f"{split.scheme}://{split.netloc.rpartition('@')[2]}{split.path}"
        credentials = split.username is not None or split.password is not None
    except ValueError:
        raise InputError(f"Invalid redirect_uri '{redirect_uri}'") from None
    parts = url_parts(redirect_uri)
    if credentials or parts is None or not any(matches(parts) for matches in allowed):
        raise InputError(f"Invalid redirect_uri '{normalized}'")


def registered_redirect_uri(requested: str, registered: Iterable[str]) -> bool:
    """Exact, except on loopback: any port (RFC 8252 section 7.3), same scheme, host and
    path."""
    parts = url_parts(requested)
    if parts is None or parts.hostname not in LOOPBACK_HOSTS:
        return requested in registered
    for candidate in registered:
        other = url_parts(candidate)
        if (
            other is not None
            and other.hostname == parts.hostname
            and other.scheme == parts.scheme
            and other.path == parts.path
        ):
            return True
    return False
