"""The authorization server's rules (Backstage's ``OidcService`` and
``OfflineAccessService``): consent sessions, the code grant with PKCE, the refresh grant,
revocation.

One piece (over 300 lines): each rule of the grant (session, code, token, refresh,
revocation) reads the same client and session state in Backstage's order; split, the
order of the checks (which decides the error a client sees) would be spread over files.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app.authz.clients import ClientRegistry
from app.authz.errors import OAuthError
from app.authz.offline import OfflineSessions, RefreshTokenReused
from app.authz.offline_records import OfflineSession
from app.authz.refresh_tokens import token_id
from app.authz.store import AuthorizationCode, AuthorizationSession, AuthorizationStore
from app.core.clock import Clock
from app.core.errors import AuthenticationError, InputError, NotFoundError
from app.identity.catalog import Catalog, user_entity
from app.identity.tokens import TokenIssuer
from app.observability.audit import Audit

log = logging.getLogger(__name__)

SESSION_SECONDS = 3600
CODE_SECONDS = 600
# Columns Backstage declares varchar(255): longer values are refused, not truncated.
MAX_COLUMN = 255
AUDIT_PROVIDER = "authorization"


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: int
    scope: str | None = None
    id_token: str | None = None
    refresh_token: str | None = None


@dataclass(frozen=True)
class SessionView:
    session: AuthorizationSession
    client_name: str
    metadata_host: str | None = None


def add_query(url: str, params: dict[str, str], *, replace: bool = False) -> str:
    parts = urlsplit(url)
    query = urlencode(params)
    if parts.query and not replace:
        query = f"{parts.query}&{query}"
    return urlunsplit(parts._replace(query=query))


class AuthorizationServer:
    def __init__(
        self,
        *,
        clients: ClientRegistry,
        store: AuthorizationStore,
        offline: OfflineSessions | None,
        token_issuer: TokenIssuer,
        catalog: Catalog,
        clock: Clock,
        audit: Audit,
        check_catalog: bool = True,
    ) -> None:
        self.clients = clients
        self.store = store
        self.offline = offline
        self._issuer = token_issuer
        self._catalog = catalog
        self._clock = clock
        self._audit = audit
        self._check_catalog = check_catalog

    # -- consent sessions -------------------------------------------------------------

    async def create_session(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        response_type: str,
        scope: str | None,
        state: str | None,
        nonce: str | None,
        code_challenge: str | None,
        code_challenge_method: str | None,
    ) -> SessionView:
        """Raises InputError (Backstage answers these with its standard error body)."""
        if response_type != "code":
            raise InputError("Only authorization code flow is supported")
        client = await self.clients.resolve(client_id, redirect_uri)
        if not code_challenge:
            raise InputError(
                "PKCE is required for all clients. Provide a code_challenge parameter."
            )
        if code_challenge_method != "S256":
            raise InputError("Invalid code_challenge_method")
        if len(code_challenge) > MAX_COLUMN or len(nonce or "") > MAX_COLUMN:
            raise InputError("Invalid code_challenge or nonce: too long")
        session = AuthorizationSession(
            id=str(uuid.uuid4()),
            client_id=client_id,
            redirect_uri=redirect_uri,
            response_type=response_type,
            status="pending",
            expires_at=self._clock.now() + SESSION_SECONDS,
            scope=scope,
            state=state,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            nonce=nonce,
        )
        await self.store.create_session(session)
        return SessionView(session, client.client_name, client.metadata_host)

    async def _pending(self, session_id: str) -> AuthorizationSession:
        session = await self.store.get_session(session_id)
        if session is None:
            raise NotFoundError("Invalid authorization session")
        if session.expires_at < self._clock.now():
            raise InputError("Authorization session expired")
        if session.status != "pending":
            raise NotFoundError("Authorization session not found or expired")
        return session

    async def pending_session(self, session_id: str) -> SessionView:
        session = await self._pending(session_id)
        client = await self.clients.resolve(session.client_id)
        return SessionView(session, client.client_name, client.metadata_host)

    async def approve(self, session_id: str, user_entity_ref: str) -> str:
        session = await self._pending(session_id)
        if not await self.store.decide_session(session.id, "approved", user_entity_ref):
            raise NotFoundError("Authorization session not found or expired")
        code = secrets.token_urlsafe(32)
        await self.store.create_code(
            AuthorizationCode(
                code=code,
                session_id=session.id,
                expires_at=self._clock.now() + CODE_SECONDS,
                used=False,
            )
        )
        params = {"code": code}
        if session.state:
            params["state"] = session.state
        self._audit.event(
            "authorization-approved",
            provider=AUDIT_PROVIDER,
            client_id=session.client_id,
            user=user_entity_ref,
        )
        return add_query(session.redirect_uri, params)

    async def reject(self, session_id: str, user_entity_ref: str) -> str:
        session = await self._pending(session_id)
        if not await self.store.decide_session(session.id, "rejected", user_entity_ref):
            raise NotFoundError("Authorization session not found or expired")
        params = {"error": "access_denied", "error_description": "User denied the request"}
        if session.state:
            params["state"] = session.state
        return add_query(session.redirect_uri, params, replace=True)

    # -- the token endpoint ------------------------------------------------------------

    async def exchange_code(
        self,
        *,
        client_id: str | None,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
        authenticated_client_id: str | None,
    ) -> TokenGrant:
        found = await self.store.get_code(code)
        if found is None:
            raise AuthenticationError("Invalid authorization code")
        if found.expires_at < self._clock.now():
            raise AuthenticationError("Authorization code expired")
        if found.used:
            raise AuthenticationError("Authorization code already used")
        session = await self.store.get_session(found.session_id)
        if session is None:
            raise NotFoundError("Invalid authorization session")
        if client_id and client_id != session.client_id:
            raise AuthenticationError("Client ID mismatch")
        if session.redirect_uri != redirect_uri:
            raise AuthenticationError("Redirect URI mismatch")
        if not authenticated_client_id and self.clients.requires_authentication(session.client_id):
            raise OAuthError("invalid_client", "Client authentication required", 401)
        if authenticated_client_id and authenticated_client_id != session.client_id:
            raise AuthenticationError("Authorization code was not issued to this client")
        if session.status != "approved":
            raise AuthenticationError("Authorization not approved")
        if not session.user_entity_ref:
            raise AuthenticationError("No user associated with authorization")
        if not code_verifier:
            raise AuthenticationError("Code verifier required for PKCE")
        if not session.code_challenge or not _pkce_matches(
            session.code_challenge, code_verifier, session.code_challenge_method
        ):
            raise AuthenticationError("Invalid code verifier")
        if not client_id:
            log.warning(
                "Authorization-code exchange without client_id is deprecated and will be "
                "rejected in a future release. Update the client to include client_id."
            )
        if not await self.store.use_code(code):
            raise AuthenticationError("Authorization code already used")
        user = session.user_entity_ref
        token = await self._issue(user)
        refresh_token = None
        if self.offline is not None and "offline_access" in (session.scope or "").split(" "):
            try:
                refresh_token = await self.offline.issue(user, session.client_id)
            except Exception as exc:  # noqa: BLE001 - the grant goes on without offline access
                log.warning(
                    "Failed to issue refresh token for user %s, offline_access will not be "
                    "available: %s",
                    user,
                    exc,
                )
        return TokenGrant(
            access_token=token,
            id_token=token,
            expires_in=self._issuer.expiration_seconds,
            scope=session.scope or "openid",
            refresh_token=refresh_token,
        )

    async def refresh(
        self, *, refresh_token: str, client_id: str | None, authenticated_client_id: str | None
    ) -> TokenGrant:
        if self.offline is None:
            raise InputError("Refresh tokens are not enabled")
        session_id = token_id(refresh_token)
        if session_id is None:
            raise AuthenticationError("Invalid refresh token format")

        def check(session: OfflineSession) -> None:
            bound = session.oidc_client_id
            if client_id and bound and client_id != bound:
                raise AuthenticationError("Refresh token was not issued to this client")
            if (
                bound
                and self.clients.requires_authentication(bound)
                and authenticated_client_id != bound
            ):
                raise OAuthError("invalid_client", "Client authentication required", 401)

        if self._check_catalog:
            # The catalog is asked before the token rotates (a failed lookup must leave
            # the token usable) and outside the transaction (it may be a remote call).
            session = await self.offline.get(session_id)
            if session is None:
                raise AuthenticationError("Invalid refresh token")
            if self.offline.is_expired(session):
                await self.offline.delete(session_id)
                raise AuthenticationError("Invalid refresh token")
            check(session)
            if await self.offline.classify_off_loop(session, refresh_token, client_id) == "invalid":
                raise AuthenticationError("Invalid refresh token")
            await self._check_user(session.user_entity_ref, session_id)
        try:
            # Without the catalog check, one transaction reads, checks and rotates.
            rotation = await self.offline.rotate(
                refresh_token,
                client_id,
                check,
                entitled_client=self._entitled(client_id, authenticated_client_id),
            )
        except RefreshTokenReused as exc:
            self._audit.event(
                "refresh-token-reuse",
                provider=AUDIT_PROVIDER,
                client_id=exc.session.oidc_client_id,
                user=exc.session.user_entity_ref,
                reason="a rotated-out refresh token was presented again; grant revoked",
            )
            raise
        if rotation.retried:
            self._audit.event(
                "refresh-token-retry",
                provider=AUDIT_PROVIDER,
                client_id=rotation.session.oidc_client_id,
                user=rotation.session.user_entity_ref,
            )
        token = await self._issue(rotation.session.user_entity_ref)
        return TokenGrant(
            access_token=token,
            expires_in=self._issuer.expiration_seconds,
            refresh_token=rotation.refresh_token,
        )

    def _entitled(self, client_id: str | None, authenticated: str | None) -> str | None:
        """``client_id`` when a grant bound to it passes the refresh checks for this
        request (it is configured, and authenticated if it must be), else None."""
        if not client_id:
            return None
        try:
            public = not self.clients.requires_authentication(client_id)
        except AuthenticationError:
            return None
        return client_id if public or authenticated == client_id else None

    async def _check_user(self, user: str, session_id: str) -> None:
        if not self._check_catalog:
            return
        assert self.offline is not None
        try:
            # Backstage's getEntityByRef on every refresh: a live answer from a remote
            # catalog (its sign-in cache would let a removed user refresh for a while).
            entity = await user_entity(self._catalog, user)
        except Exception as exc:  # noqa: BLE001 - any catalog failure refuses the refresh
            log.warning("Failed to validate catalog user existence for %s: %s", user, exc)
            raise AuthenticationError("Unable to validate user existence") from exc
        if entity is None:
            log.info("Rejecting refresh for %s: not in the catalog; revoking %s", user, session_id)
            await self.offline.delete(session_id)
            raise AuthenticationError("User entity no longer exists in the catalog")

    async def _issue(self, user: str) -> str:
        return await self._issuer.issue_token(sub=user, ent=(), record_user_info=False)

    # -- revocation --------------------------------------------------------------------

    async def revoke(self, token: str, client_id: str) -> None:
        """Ends the grant of a refresh token; anything else is ignored (RFC 7009).

        Backstage deletes the grant a token's id names without checking the rest of the
        token; here the token must be the grant's (current or previous) and the grant the
        client's, so knowing an id (it is in logs) is not enough to end someone's grant.
        """
        if self.offline is None:
            return
        session_id = token_id(token)
        session = await self.offline.get(session_id) if session_id else None
        if session is None or (session.oidc_client_id not in (None, client_id)):
            return
        if await self.offline.classify_off_loop(session, token, client_id) != "invalid":
            await self.offline.delete(session.id)

    async def revoke_for_user(self, user_entity_ref: str) -> int:
        assert self.offline is not None
        return await self.offline.delete_for_user(user_entity_ref)

    async def cleanup(self) -> None:
        await self.store.cleanup(self._clock.now())
        if self.offline is not None:
            await self.offline.cleanup()


def _pkce_matches(challenge: str, verifier: str, method: str | None) -> bool:
    if method != "S256":
        return False
    computed = create_s256_code_challenge(verifier)
    return hmac.compare_digest(computed.encode(), challenge.encode())
