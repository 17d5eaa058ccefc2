"""A fake Google OAuth 2.0 service, shaped after Google's docs ("Using OAuth 2.0 for Web
Server Applications", "OpenID Connect").

- ``GET https://accounts.google.com/o/oauth2/v2/auth``; ``POST
  https://www.googleapis.com/oauth2/v4/token`` (passport-google-oauth20's token URL). The
  code grant returns ``access_token``, ``expires_in``, ``scope`` (space-separated),
  ``token_type: Bearer``, ``id_token`` and, with ``access_type=offline``, a
  ``refresh_token``; a refresh grant returns no new refresh token. A revoked or unknown
  refresh token is ``invalid_grant`` ("Token has been expired or revoked.").
- ``GET https://www.googleapis.com/oauth2/v3/userinfo``: the OpenID claims.
- ``POST https://oauth2.googleapis.com/revoke`` with ``token=``: 200, or 400
  ``invalid_token``; revoking a refresh token ends its grant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.fakes.fake_idp import RecordedRequest
from tests.fakes.fake_oauth_service import FakeOAuthService, fake_jwt

SUB = "110169484474386276334"


def google_userinfo(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "sub": SUB,
        "name": "Jane Doe",
        "given_name": "Jane",
        "family_name": "Doe",
        "picture": "https://lh3.googleusercontent.com/a/jane=s96-c",
        "email": "jane@example.com",
        "email_verified": True,
        "hd": "example.com",
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


@dataclass
class FakeGoogle(FakeOAuthService):
    userinfo: dict[str, Any] = field(default_factory=google_userinfo)
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.access_token_lifetime = 3599
        self.access_token_prefix = "ya29."
        self.urls = {
            "authorize": "https://accounts.google.com/o/oauth2/v2/auth",
            "token": "https://www.googleapis.com/oauth2/v4/token",
            "profile": "https://www.googleapis.com/oauth2/v3/userinfo",
            "revoke": "https://oauth2.googleapis.com/revoke",
        }

    def oauth_error(self, error: str, description: str) -> httpx2.Response:
        if error == "invalid_grant" and "refresh" in description:
            description = "Token has been expired or revoked."
        return httpx2.Response(400, json={"error": error, "error_description": description})

    def token_body(self, scope: str, *, refresh_token: str | None) -> dict[str, Any]:
        body = super().token_body(scope, refresh_token=refresh_token)
        body["id_token"] = fake_jwt(
            {
                "iss": "https://accounts.google.com",
                "aud": self.client_id,
                "sub": SUB,
                "email": "jane@example.com",
                "email_verified": True,
                "name": "Jane From The ID Token",
                "picture": "https://lh3.googleusercontent.com/a/from-id-token",
                **self.id_token_claims,
            }
        )
        return body

    def serve_profile(self, request: RecordedRequest) -> httpx2.Response:
        if self.bearer_scope(request) is None:
            return httpx2.Response(401, json={"error": "invalid_request"})
        return httpx2.Response(200, json=self.userinfo)

    def serve_revoke(self, request: RecordedRequest) -> httpx2.Response:
        token = request.form.get("token", "")
        if request.method != "POST" or token not in {*self.refresh_tokens, *self.access_tokens}:
            return httpx2.Response(400, json={"error": "invalid_token"})
        self.revoked.append(token)
        self.refresh_tokens.pop(token, None)
        self.access_tokens.pop(token, None)
        return httpx2.Response(200)
