"""What the development identity provider keeps: clients, authorization codes, tokens.

They implement Authlib's model mixins, which its grants and endpoints call.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin

from app.devidp.settings import DevClientConfig, DevUser

# The scopes it knows; others are dropped from what it grants (no error, as many IdPs do).
SUPPORTED_SCOPES = ("openid", "profile", "email", "offline_access")
GRANT_TYPES = ("authorization_code", "refresh_token")


class DevClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, config: DevClientConfig) -> None:
        self.config = config
        self.client_id = config.client_id
        # Read by Authlib's UserInfoEndpoint (no signed userinfo here).
        self.client_metadata: dict[str, Any] = {}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.config.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in scope_to_list(scope) if s in SUPPORTED_SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.config.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.config.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return bool(method == self.config.token_endpoint_auth_method)
        # Revocation: either form of the client secret.
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: DevUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    client: DevClient
    user: DevUser
    access_token: str
    scope: str
    issued_at: float
    expires_in: int
    refresh_token: str | None = None
    refresh_expires_at: float = 0.0
    # Every token rotated from one sign-in shares the family: a replayed (rotated-away)
    # refresh token revokes them all (RFC 9700 4.14.2).
    family: str = ""
    revoked: bool = False
    # Set when a refresh rotated this token away: its access token stays usable until it
    # expires, its refresh token does not.
    rotated: bool = False

    def check_client(self, client: DevClient) -> bool:
        return bool(client.get_client_id() == self.client.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> DevUser:
        return self.user

    def get_client(self) -> DevClient:
        return self.client

    def refresh_usable(self) -> bool:
        return (
            self.refresh_token is not None
            and not self.revoked
            and not self.rotated
            and time.time() < self.refresh_expires_at
        )
