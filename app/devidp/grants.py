"""Authlib grants and endpoints of the development identity provider, over its store.

Authorization code (PKCE: ``CodeChallenge``; OpenID Connect: ``OpenIDCode``, RS256 ID
tokens), refresh tokens with rotation (and an ID token on refresh), revocation (RFC 7009),
userinfo (OIDC Core 5.3).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oidc.core import OpenIDCode, OpenIDToken, UserInfo, UserInfoEndpoint
from joserfc.jwk import RSAKey

from app.devidp.models import AuthorizationCode, DevClient, Token
from app.devidp.settings import DevUser
from app.devidp.store import MemoryStore

CODE_LIFETIME_SECONDS = 600
ACCESS_TOKEN_LIFETIME_SECONDS = 3600
REFRESH_TOKEN_LIFETIME_SECONDS = 30 * 24 * 3600
ID_TOKEN_ALGORITHM = "RS256"


def _store(owner: Any) -> MemoryStore:
    """Grants and endpoints are made per request by Authlib; the store is the server's."""
    store: MemoryStore = owner.server.store
    return store


def user_info(user: DevUser, scope: str) -> Any:
    """The user's claims that ``scope`` grants (UserInfo is a dict)."""
    return UserInfo(
        sub=user.username,
        name=user.name,
        preferred_username=user.username,
        email=user.email,
        email_verified=True,
    ).filter(scope)


class _IdTokens:
    """What both ID-token extensions share: issuer, key, claims."""

    issuer: str
    key: RSAKey

    def resolve_client_private_key(self, client: DevClient) -> RSAKey:
        return self.key

    def get_client_algorithm(self, client: DevClient) -> str:
        return ID_TOKEN_ALGORITHM

    def get_encode_header(self, client: DevClient) -> dict[str, str]:
        return {"alg": ID_TOKEN_ALGORITHM, "kid": str(self.key.kid), "typ": "JWT"}

    def get_client_claims(self, client: DevClient) -> dict[str, Any]:
        return {"iss": self.issuer, "aud": [client.get_client_id()]}

    def generate_user_info(self, user: DevUser, scope: str) -> Any:
        return user_info(user, scope)


class DevOpenIDCode(_IdTokens, OpenIDCode):  # type: ignore[misc]
    def __init__(self, *, issuer: str, key: RSAKey, store: MemoryStore) -> None:
        super().__init__(require_nonce=False)
        self.issuer = issuer
        self.key = key
        self._store = store

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return self._store.nonce_seen(request.payload.client_id, nonce)


class DevRefreshIdToken(_IdTokens, OpenIDToken):  # type: ignore[misc]
    """An ID token in refresh responses too (OIDC Core 12.2), so ``providerInfo.idToken``
    stays current."""

    def __init__(self, *, issuer: str, key: RSAKey) -> None:
        self.issuer = issuer
        self.key = key


class DevAuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    @property
    def store(self) -> MemoryStore:
        return _store(self)

    def save_authorization_code(self, code: str, request: Any) -> None:
        payload = request.payload.data
        self.store.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.client.get_allowed_scope(request.payload.scope),
                user=request.user,
                nonce=payload.get("nonce"),
                code_challenge=payload.get("code_challenge"),
                code_challenge_method=payload.get("code_challenge_method"),
                auth_time=int(time.time()),
                expires_at=time.time() + CODE_LIFETIME_SECONDS,
            )
        )

    def query_authorization_code(self, code: str, client: DevClient) -> AuthorizationCode | None:
        return self.store.take_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already removed when it was read (one use, whatever the outcome)."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> DevUser:
        return authorization_code.user


class DevRefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    # Rotation: every refresh answers a new refresh token and retires the old one.
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def store(self) -> MemoryStore:
        return _store(self)

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = self.store.by_refresh_token(refresh_token)
        if token is None:
            return None
        if token.rotated and not token.revoked:
            # A retired refresh token came back: someone holds a copy. End the family.
            self.store.revoke_family(token.family)
            return None
        return token if token.refresh_usable() else None

    def authenticate_user(self, refresh_token: Token) -> DevUser:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        self.store.rotate(refresh_token)


class DevRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    @property
    def store(self) -> MemoryStore:
        return _store(self)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        if token_type_hint == "access_token":
            return self.store.by_access_token(token_string)
        if token_type_hint == "refresh_token":
            return self.store.by_refresh_token(token_string)
        return self.store.by_refresh_token(token_string) or self.store.by_access_token(token_string)

    def revoke_token(self, token: Token, request: Any) -> None:
        # Revoking a refresh token ends the sign-in: every token of its family.
        self.store.revoke_family(token.family)


class DevBearerTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store

    def authenticate_token(self, token_string: str) -> Token | None:
        return self.store.by_access_token(token_string)


class DevUserInfoEndpoint(UserInfoEndpoint):  # type: ignore[misc]
    def get_issuer(self) -> str:
        return str(self.server.issuer)

    def generate_user_info(self, user: DevUser, scope: str) -> Any:
        return user_info(user, scope)


def save_token(store: MemoryStore, token: dict[str, Any], request: Any) -> None:
    """Authlib's ``save_token``: after the code grant (a new family) or a refresh (the
    refreshed token's family)."""
    previous: Token | None = request.refresh_token
    now = time.time()
    store.save_token(
        Token(
            client=request.client,
            user=request.user,
            access_token=token["access_token"],
            scope=token.get("scope", ""),
            issued_at=now,
            expires_in=int(token.get("expires_in", 3600)),
            refresh_token=token.get("refresh_token"),
            refresh_expires_at=now + REFRESH_TOKEN_LIFETIME_SECONDS,
            family=previous.family if previous is not None else secrets.token_urlsafe(16),
        )
    )
