"""A fake Bitbucket Cloud (bitbucket.org OAuth 2.0 + the api.bitbucket.org 2.0 REST API).

Shaped after Bitbucket Cloud's REST reference ("Users": ``GET /2.0/user``,
``GET /2.0/user/emails``) and its OAuth guide: the token endpoint is
``/site/oauth2/access_token`` and answers ``scopes`` (not ``scope``) and ``token_type:
bearer``; API errors are ``{"type": "error", "error": {"message": ...}}``.
"""

from __future__ import annotations

from typing import Any

import httpx2

from tests.fakes.fake_idp import FakeIdP, RecordedRequest
from tests.fakes.service_fake import ServiceFake

UUID = "{c788b2da-b7a2-404c-9e26-d3f077557007}"
AVATAR = "https://avatar-management.test/initials/JD-3.png"


class FakeBitbucket(ServiceFake):
    OAUTH_PATHS = {"/site/oauth2/access_token": "token"}

    def __init__(self, idp: FakeIdP) -> None:
        super().__init__(idp)
        self.user: dict[str, Any] = {
            "type": "user",
            "uuid": UUID,
            "account_id": "557058:4b2c3d4e-0000-1111-2222-333344445555",
            "nickname": "jdoe",
            "username": "jdoe",
            "display_name": "Jane Doe",
            "account_status": "active",
            "created_on": "2019-02-01T10:00:00.000000+00:00",
            "links": {
                "self": {"href": "https://api.bitbucket.org/2.0/users/%7Bc788b2da%7D"},
                "avatar": {"href": AVATAR},
                "html": {"href": "https://bitbucket.org/%7Bc788b2da%7D/"},
            },
        }
        self.emails: list[dict[str, Any]] = [
            _email("jd@old.example", primary=False, confirmed=True),
            _email("jane.doe@example.com", primary=True, confirmed=True),
        ]

    def shape_token(self, body: dict[str, Any]) -> dict[str, Any]:
        shaped = {k: v for k, v in body.items() if k != "scope"}
        return {**shaped, "scopes": body.get("scope", ""), "token_type": "bearer"}

    def route(self, request: RecordedRequest) -> str | None:
        routes = {"/2.0/user": "user", "/2.0/user/emails": "emails"}
        return routes.get(request.path) if request.method == "GET" else None

    def serve_user(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return _unauthorized()
        return httpx2.Response(200, json=self.user)

    def serve_emails(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return _unauthorized()
        page = {"pagelen": 10, "values": self.emails, "page": 1, "size": len(self.emails)}
        return httpx2.Response(200, json=page)


def _email(address: str, *, primary: bool, confirmed: bool) -> dict[str, Any]:
    return {
        "is_primary": primary,
        "is_confirmed": confirmed,
        "type": "email",
        "email": address,
        "links": {"self": {"href": f"https://api.bitbucket.org/2.0/user/emails/{address}"}},
    }


def _unauthorized() -> httpx2.Response:
    body = {"type": "error", "error": {"message": "Access token expired."}}
    return httpx2.Response(401, json=body)
