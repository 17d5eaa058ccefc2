"""A fake GitLab (gitlab.com or self-managed), shaped after GitLab's docs ("OAuth 2.0
identity provider API", "Users API: Get the current user").

- ``GET <base>/oauth/authorize``; ``POST <base>/oauth/token``: tokens expire after two
  hours, the response carries ``created_at``, and a refresh grant revokes the refresh
  token it used and returns a new one.
- ``GET <base>/api/v4/user``: the current user; 401 ``{"message": "401 Unauthorized"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.fakes.fake_idp import RecordedRequest
from tests.fakes.fake_oauth_service import FakeOAuthService


def gitlab_user(base_url: str = "https://gitlab.com", **overrides: Any) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": 1,
        "username": "john_smith",
        "name": "John Smith",
        "state": "active",
        "locked": False,
        "avatar_url": "https://gitlab.com/uploads/-/system/user/avatar/1/cd8.jpeg",
        "web_url": f"{base_url}/john_smith",
        "created_at": "2012-05-23T08:00:58Z",
        "public_email": "",
        "email": "john@example.com",
        "commit_email": "john@example.com",
        "two_factor_enabled": True,
    }
    user.update(overrides)
    return user


@dataclass
class FakeGitLab(FakeOAuthService):
    base_url: str = "https://gitlab.com"
    user: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.access_token_lifetime = 7200
        self.rotate_refresh_tokens = True
        self.user = self.user or gitlab_user(self.base_url)
        self.urls = {
            "authorize": f"{self.base_url}/oauth/authorize",
            "token": f"{self.base_url}/oauth/token",
            "profile": f"{self.base_url}/api/v4/user",
        }

    def token_body(self, scope: str, *, refresh_token: str | None) -> dict[str, Any]:
        body = super().token_body(scope, refresh_token=refresh_token)
        body["created_at"] = 1_700_000_000
        return body

    def serve_profile(self, request: RecordedRequest) -> httpx2.Response:
        if self.bearer_scope(request) is None:
            return httpx2.Response(401, json={"message": "401 Unauthorized"})
        return httpx2.Response(200, json=self.user)
