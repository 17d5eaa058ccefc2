"""Assembly of the authorization server (``app.authz``) from the settings."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence

from app.authz.cimd import ClientMetadataDocuments
from app.authz.cimd_fetch import ProxyFor, Resolver, direct, system_resolver
from app.authz.clients import ClientRegistry
from app.authz.offline import OfflineSessions
from app.authz.refresh_tokens import TokenHasher, derive_key
from app.authz.service import AuthorizationServer
from app.authz.store import AuthorizationStore
from app.config.settings import Settings
from app.core.clock import Clock
from app.core.errors import BackstageError
from app.db.database import Database
from app.identity.catalog import Catalog
from app.identity.tokens import TokenIssuer
from app.observability.audit import Audit

log = logging.getLogger(__name__)

# Backstage cleans up expired offline sessions hourly.
CLEANUP_SECONDS = 3600.0
# A rotated-out refresh token presented again by its client within this many seconds is
# a retry (a lost response), not reuse.
REUSE_GRACE_SECONDS = 10.0


def build_authorization_server(
    settings: Settings,
    database: Database | None,
    issuer: TokenIssuer,
    catalog: Catalog,
    secrets: Sequence[str],
    clock: Clock,
    audit: Audit,
    *,
    development: bool = False,
    resolver: Resolver | None = None,
    proxy_for: ProxyFor = direct,
    tls: ssl.SSLContext | None = None,
) -> AuthorizationServer | None:
    """``resolver`` resolves the hosts of metadata documents (tests give a fake one);
    ``proxy_for`` and ``tls`` are the outbound transport's proxy decision and trust."""
    config = settings.authorization
    if not config.enabled:
        return None
    documents = None
    if config.client_metadata.enabled:
        documents = ClientMetadataDocuments(
            config.client_metadata,
            auth_base_url=settings.auth_base_url,
            clock=clock,
            development=development,
            resolver=resolver or system_resolver,
            proxy_for=proxy_for,
            tls=tls,
        )
    assert database is not None  # application._database provides one
    offline = None
    refresh = config.refresh_tokens
    if refresh.enabled:
        if not database.is_shared:
            log.warning(
                "Refresh tokens are enabled with SQLite: one instance only; use PostgreSQL "
                "to run several instances"
            )
        # Keyed with the configured secret only: a generated one differs per instance.
        keys = [derive_key(s) for s in secrets] if settings.session_secret else []
        offline = OfflineSessions(
            database.engine,
            TokenHasher(keys),
            refresh,
            clock,
            reuse_grace_seconds=REUSE_GRACE_SECONDS,
        )
    return AuthorizationServer(
        clients=ClientRegistry(config.static_clients, documents, development=development),
        store=AuthorizationStore(database.engine),
        offline=offline,
        token_issuer=issuer,
        catalog=catalog,
        clock=clock,
        audit=audit,
        check_catalog=not refresh.disable_catalog_presence_check,
    )


async def run_cleanup(server: AuthorizationServer, interval: float = CLEANUP_SECONDS) -> None:
    """Deletes expired consent sessions, codes and offline sessions, hourly."""
    while True:
        await asyncio.sleep(interval)
        try:
            await server.cleanup()
        except BackstageError as exc:
            log.warning("Failed to clean up expired authorization data: %s", exc.message)
