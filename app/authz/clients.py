"""Pre-registered clients (``auth.staticClients``) and their rules: redirect URIs,
secrets, who must authenticate."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from app.config.authorization import StaticClient, can_parse_url
from app.core.errors import AuthenticationError, InputError

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _parts(uri: str) -> tuple[str, str, str] | None:
    try:
        split = urlsplit(uri)
        host = split.hostname or ""
        split.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return None
    return split.scheme.lower(), host.lower(), split.path or "/"


def redirect_uri_matches(requested: str, registered: Iterable[str]) -> bool:
    """Exact match, except that a loopback ``http`` URI matches a registered one on any
    port (RFC 8252 section 7.3: native apps listen on an ephemeral port)."""
    registered = tuple(registered)
    if requested in registered:
        return True
    parts = _parts(requested)
    if parts is None or parts[1] not in LOOPBACK_HOSTS or parts[0] != "http":
        return False
    try:
        query = urlsplit(requested).query
    except ValueError:
        return False
    for candidate in registered:
        other = _parts(candidate)
        if other == parts and urlsplit(candidate).query == query:
            return True
    return False


def _equal(expected: str, provided: str) -> bool:
    return hmac.compare_digest(expected.encode(), provided.encode())


class ClientRegistry:
    def __init__(self, clients: Iterable[StaticClient]) -> None:
        self._clients = {client.client_id: client for client in clients}

    def __bool__(self) -> bool:
        return bool(self._clients)

    def __iter__(self) -> Iterable[StaticClient]:
        return iter(self._clients.values())

    @property
    def has_confidential(self) -> bool:
        return any(c.client_secret for c in self._clients.values())

    @property
    def has_public(self) -> bool:
        return any(not c.client_secret for c in self._clients.values())

    def resolve(self, client_id: str, redirect_uri: str | None = None) -> StaticClient:
        """Raises InputError for an unknown client or an unregistered redirect URI."""
        client = self._clients.get(client_id)
        if client is None:
            # Backstage's answers: a client id that is no URL, or one that would be a
            # Client ID Metadata Document while those are off.
            if not can_parse_url(client_id):
                raise InputError("Invalid client_id: not a valid URL")
            raise InputError("Client ID metadata documents not enabled")
        if redirect_uri is not None and not redirect_uri_matches(
            redirect_uri, client.redirect_uris
        ):
            raise InputError(f"Invalid redirect_uri '{redirect_uri}'")
        return client

    def verify_credentials(self, client_id: str, client_secret: str) -> bool:
        client = self._clients.get(client_id)
        if client is None or not client.client_secret:
            return False
        return _equal(client.client_secret, client_secret)

    def requires_authentication(self, client_id: str) -> bool:
        """Raises AuthenticationError when the client is no longer configured."""
        client = self._clients.get(client_id)
        if client is None:
            raise AuthenticationError("Client is no longer registered")
        return bool(client.client_secret)

    def verify_revocation_client(self, client_id: str, client_secret: str | None) -> bool:
        client = self._clients.get(client_id)
        if client is None:
            return False
        if not client.client_secret:
            return True
        return bool(client_secret) and _equal(client.client_secret, client_secret or "")
