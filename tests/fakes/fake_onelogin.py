"""A fake OneLogin OpenID Connect (v2) account.

Shaped after OneLogin's OIDC API reference: issuer ``https://<subdomain>.onelogin.com/oidc/2``
with ``/auth``, ``/token`` and the user info endpoint ``/me`` under it; ``/me`` returns
``sub``, ``email``, ``preferred_username``, ``name``, ``given_name``, ``family_name``,
``updated_at`` (and ``groups`` when configured), ``401`` for a bad token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx2

from tests.fakes.fake_idp import FakeIdP, RecordedRequest
from tests.fakes.service_fake import ServiceFake

ISSUER = "https://example.onelogin.test/oidc/2"
_PREFIX = urlsplit(ISSUER).path


class FakeOneLogin(ServiceFake):
    OAUTH_PATHS = {f"{_PREFIX}/token": "token"}

    def __init__(self, idp: FakeIdP) -> None:
        super().__init__(idp)
        self.issuer = ISSUER
        self.me: dict[str, Any] = {
            "sub": idp.subject,
            "email": "jane.doe@example.com",
            "preferred_username": "jane.doe",
            "name": "Jane Doe",
            "given_name": "Jane",
            "family_name": "Doe",
            "updated_at": 1700000000,
            "groups": ["Engineering"],
        }

    def route(self, request: RecordedRequest) -> str | None:
        return "me" if (request.method, request.path) == ("GET", f"{_PREFIX}/me") else None

    def serve_me(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return httpx2.Response(401, json={"error": "invalid_token"})
        return httpx2.Response(200, json=self.me)
