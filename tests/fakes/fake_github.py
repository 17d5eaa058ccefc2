"""A fake github.com (or GitHub Enterprise Server), shaped after GitHub's docs.

- Web flow (docs.github.com "Authorizing OAuth apps"): ``GET /login/oauth/authorize``,
  ``POST /login/oauth/access_token``. The token endpoint answers
  ``application/x-www-form-urlencoded`` unless the request says
  ``Accept: application/json``, and reports errors (``bad_verification_code``,
  ``bad_refresh_token``, ``incorrect_client_credentials``) with **HTTP 200**.
- OAuth App tokens never expire and come without a refresh token; GitHub App user tokens
  (``kind="github_app"``, "Refreshing user access tokens") expire after 8 hours, come with
  a refresh token, and refreshing spends the old refresh token.
- ``GET /user`` (REST "Get the authenticated user") on ``api.github.com`` or
  ``<instance>/api/v3``: 401 ``Bad credentials`` for a token it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import httpx2

from tests.fakes.fake_idp import RecordedRequest
from tests.fakes.fake_oauth_service import FakeOAuthService


def github_user(**overrides: Any) -> dict[str, Any]:
    user: dict[str, Any] = {
        "login": "octocat",
        "id": 583231,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
        "html_url": "https://github.com/octocat",
        "type": "User",
        "site_admin": False,
        "name": "The Octocat",
        "company": "@github",
        "email": "octocat@github.com",
        "two_factor_authentication": True,
    }
    user.update(overrides)
    return user


@dataclass
class FakeGitHub(FakeOAuthService):
    BAD_CODE = "bad_verification_code"
    BAD_REFRESH_TOKEN = "bad_refresh_token"

    instance_url: str | None = None  # GitHub Enterprise Server; None is github.com
    kind: Literal["oauth_app", "github_app"] = "oauth_app"
    user: dict[str, Any] = field(default_factory=github_user)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.access_token_lifetime = 28800
        self.rotate_refresh_tokens = True
        web = self.instance_url or "https://github.com"
        api = f"{self.instance_url}/api/v3" if self.instance_url else "https://api.github.com"
        self.urls = {
            "authorize": f"{web}/login/oauth/authorize",
            "token": f"{web}/login/oauth/access_token",
            "profile": f"{api}/user",
        }

    def revoke_all(self) -> None:
        """The user revoked the app: no token works any more."""
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    def oauth_error(self, error: str, description: str) -> httpx2.Response:
        uri = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
        body = {"error": error, "error_description": description, "error_uri": uri}
        return httpx2.Response(200, json=body)

    def token_body(self, scope: str, *, refresh_token: str | None) -> dict[str, Any]:
        access = f"gho_{self.next_id()}"
        self.access_tokens[access] = scope
        if self.kind == "oauth_app":
            # The granted scopes, comma-separated; no expiry, no refresh token.
            self.refresh_tokens.pop(refresh_token or "", None)
            return {
                "access_token": access,
                "token_type": "bearer",
                "scope": scope.replace(" ", ","),
            }
        if refresh_token is None:  # a code grant: the first refresh token
            refresh_token = self.issue_refresh_token(scope)
        return {
            "access_token": access,
            "expires_in": self.access_token_lifetime,
            "refresh_token": refresh_token,
            "refresh_token_expires_in": 15_811_200,
            "scope": "",
            "token_type": "bearer",
        }

    def token_response(self, body: dict[str, Any], request: RecordedRequest) -> httpx2.Response:
        if "application/json" in request.headers.get("accept", ""):
            return httpx2.Response(200, json=body)
        return httpx2.Response(
            200,
            text=urlencode(body),
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        )

    def serve_profile(self, request: RecordedRequest) -> httpx2.Response:
        if self.bearer_scope(request) is None:
            return httpx2.Response(
                401,
                json={
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
            )
        return httpx2.Response(200, json=self.user)
