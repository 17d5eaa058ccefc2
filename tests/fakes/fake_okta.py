"""A fake Okta org, shaped after Okta's docs ("OpenID Connect & OAuth 2.0 API").

- ``<org>/oauth2/v1/{authorize,token,userinfo}`` (the org authorization server) or
  ``<org>/oauth2/<authServerId>/v1/...`` (a custom one, such as ``default``).
- The token response: ``token_type``, ``expires_in``, ``access_token``, ``scope``,
  ``refresh_token`` (with ``offline_access``), ``id_token`` (with ``openid``).
- userinfo: the OpenID claims; 401 with ``WWW-Authenticate`` for a bad token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.fakes.fake_idp import RecordedRequest
from tests.fakes.fake_oauth_service import FakeOAuthService, fake_jwt

ORG = "https://dev-133337.okta.com"
SUB = "00uid4BxXw6I6TV4m0g3"


def okta_userinfo(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "sub": SUB,
        "name": "John Doe",
        "nickname": "Jimmy",
        "given_name": "John",
        "family_name": "Doe",
        "preferred_username": "john.doe@example.com",
        "email": "john.doe@example.com",
        "email_verified": True,
        "locale": "en-US",
        "zoneinfo": "America/Los_Angeles",
        "updated_at": 1_490_198_843,
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


@dataclass
class FakeOkta(FakeOAuthService):
    org_url: str = ORG
    auth_server_id: str | None = "default"
    userinfo: dict[str, Any] = field(default_factory=okta_userinfo)

    def __post_init__(self) -> None:
        super().__post_init__()
        server = f"{self.org_url}/oauth2" + (
            f"/{self.auth_server_id}" if self.auth_server_id else ""
        )
        self.urls = {
            "authorize": f"{server}/v1/authorize",
            "token": f"{server}/v1/token",
            "profile": f"{server}/v1/userinfo",
        }

    def token_body(self, scope: str, *, refresh_token: str | None) -> dict[str, Any]:
        body = super().token_body(scope, refresh_token=refresh_token)
        if "offline_access" not in scope.split():
            body.pop("refresh_token", None)
        if "openid" in scope.split():
            body["id_token"] = fake_jwt(
                {"sub": SUB, "aud": self.client_id, "picture": "https://example.com/john.png"}
            )
        return body

    def serve_profile(self, request: RecordedRequest) -> httpx2.Response:
        if self.bearer_scope(request) is None:
            return httpx2.Response(
                401,
                headers={
                    "www-authenticate": 'Bearer error="invalid_token", '
                    'error_description="The access token is invalid."'
                },
            )
        return httpx2.Response(200, json=self.userinfo)
