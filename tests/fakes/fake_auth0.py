"""A fake Auth0 tenant (Authentication API: ``/authorize``, ``/oauth/token``, ``/userinfo``).

Shaped after Auth0's Authentication API reference: ``/userinfo`` returns the OIDC standard
claims of the user the access token was issued for, and ``401 Unauthorized`` (text) for any
other token. The token endpoint is the wrapped ``FakeIdP``'s; with ``openid`` in the scope
its ID tokens carry ``sub = idp.subject``, which ``/userinfo`` repeats.
"""

from __future__ import annotations

from typing import Any

import httpx2

from tests.fakes.fake_idp import FakeIdP, RecordedRequest
from tests.fakes.service_fake import ServiceFake

DOMAIN = "example.eu.auth0.test"


class FakeAuth0(ServiceFake):
    OAUTH_PATHS = {"/oauth/token": "token"}

    def __init__(self, idp: FakeIdP, *, domain: str = DOMAIN) -> None:
        super().__init__(idp)
        self.domain = domain
        self.userinfo: dict[str, Any] = {
            "sub": idp.subject,
            "given_name": "Jane",
            "family_name": "Doe",
            "nickname": "jane.doe",
            "name": "Jane Doe",
            "picture": "https://s.gravatar.test/avatar/jane.png",
            "locale": "en",
            "updated_at": "2024-05-01T09:00:00.000Z",
            "email": "jane.doe@example.com",
            "email_verified": True,
        }

    def url(self, path: str) -> str:
        return f"https://{self.domain}{path}"

    def route(self, request: RecordedRequest) -> str | None:
        return "userinfo" if (request.method, request.path) == ("GET", "/userinfo") else None

    def serve_userinfo(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return httpx2.Response(401, text="Unauthorized")
        return httpx2.Response(200, json=self.userinfo)
