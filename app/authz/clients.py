"""Pre-registered clients (``auth.staticClients``) and their rules: redirect URIs,
secrets, who must authenticate."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.authz.cimd import ClientMetadataDocuments
from app.authz.cimd_rules import validate_client_id_url
from app.config.authorization import StaticClient
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


@dataclass(frozen=True)
class ResolvedClient:
    client_id: str
    client_name: str
    # The host of a metadata document's URL: who asks, shown on the consent page.
    metadata_host: str | None = None


class ClientRegistry:
    def __init__(
        self,
        clients: Iterable[StaticClient],
        documents: ClientMetadataDocuments | None = None,
        *,
        development: bool = False,
    ) -> None:
        self._clients = {client.client_id: client for client in clients}
        self.documents = documents
        self._development = development

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

    async def resolve(self, client_id: str, redirect_uri: str | None = None) -> ResolvedClient:
        """Raises InputError for an unknown client or an unregistered redirect URI."""
        client = self._clients.get(client_id)
        if client is None:
            # Backstage's order: the URL rules, then whether documents are on at all.
            url = validate_client_id_url(client_id, development=self._development)
            if self.documents is None:
                raise InputError("Client ID metadata documents not enabled")
            document = await self.documents.resolve(client_id, redirect_uri)
            return ResolvedClient(client_id, document.client_name, url.hostname)
        if redirect_uri is not None and not redirect_uri_matches(
            redirect_uri, client.redirect_uris
        ):
            raise InputError(f"Invalid redirect_uri '{redirect_uri}'")
        return ResolvedClient(client.client_id, client.client_name)

    def verify_credentials(self, client_id: str, client_secret: str) -> bool:
        client = self._clients.get(client_id)
        if client is None or not client.client_secret:
            return False
        return _equal(client.client_secret, client_secret)

    def requires_authentication(self, client_id: str) -> bool:
        """Raises AuthenticationError when the client is no longer configured."""
        client = self._clients.get(client_id)
        if client is None:
            # Clients of metadata documents are public; the document is not fetched again.
            try:
                validate_client_id_url(client_id, development=self._development)
            except InputError:
                raise AuthenticationError("Client is no longer registered") from None
            return False
        return bool(client.client_secret)

    def verify_revocation_client(self, client_id: str, client_secret: str | None) -> bool:
        client = self._clients.get(client_id)
        if client is None:
            return self.documents is not None and self.documents.allows(client_id)
        if not client.client_secret:
            return True
        return bool(client_secret) and _equal(client.client_secret, client_secret or "")
