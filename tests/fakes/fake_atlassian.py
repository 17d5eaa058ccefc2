"""A fake Atlassian Cloud OAuth 2.0 (3LO): auth.atlassian.com + ``api.atlassian.com/me``.

Shaped after Atlassian's "OAuth 2.0 (3LO) apps" guide and the User Identity API
(``GET /me``): the profile has ``account_id``, ``email``, ``name``, ``picture``,
``nickname`` and ``extended_profile``; a bad token gets ``401`` ``{"code": 401, "message":
"Unauthorized"}``. Atlassian's token endpoint is ``/oauth/token``.
"""

from __future__ import annotations

from typing import Any

import httpx2

from tests.fakes.fake_idp import FakeIdP, RecordedRequest
from tests.fakes.service_fake import ServiceFake

ACCOUNT_ID = "5b10a2844c20165700ede21g"


class FakeAtlassian(ServiceFake):
    OAUTH_PATHS = {"/oauth/token": "token"}

    def __init__(self, idp: FakeIdP) -> None:
        super().__init__(idp)
        self.me: dict[str, Any] = {
            "account_type": "atlassian",
            "account_id": ACCOUNT_ID,
            "email": "jane.doe@example.com",
            "name": "Jane Doe",
            "picture": "https://avatar-management.test/5b10a2844c20165700ede21g/128",
            "account_status": "active",
            "nickname": "jdoe",
            "zoneinfo": "Europe/London",
            "locale": "en-GB",
            "extended_profile": {"job_title": "Engineer", "organization": "Example Ltd"},
        }

    def route(self, request: RecordedRequest) -> str | None:
        return "me" if (request.method, request.path) == ("GET", "/me") else None

    def serve_me(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return httpx2.Response(401, json={"code": 401, "message": "Unauthorized"})
        return httpx2.Response(200, json=self.me)
