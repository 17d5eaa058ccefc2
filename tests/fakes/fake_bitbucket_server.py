"""A fake Bitbucket Server / Data Center (incoming OAuth 2.0 + REST API 1.0).

Shaped after Bitbucket Data Center's REST reference and its OAuth 2.0 provider guide:
``/rest/oauth2/latest/{authorize,token}``; the application-links servlet
``/plugins/servlet/applinks/whoami`` answers 200 for everyone, naming the user (body and
``X-AUSERNAME`` header) only for a valid token; ``/rest/api/latest/users/<slug>`` is the user,
with an ``avatarUrl`` (server-relative) when ``avatarSize`` is asked for; errors are
``{"errors": [{"message": ...}]}``.
"""

from __future__ import annotations

from typing import Any

import httpx2

from tests.fakes.fake_idp import FakeIdP, RecordedRequest
from tests.fakes.service_fake import ServiceFake

HOST = "bitbucket.example.test"
WHOAMI_PATH = "/plugins/servlet/applinks/whoami"
USERS_PREFIX = "/rest/api/latest/users/"


class FakeBitbucketServer(ServiceFake):
    OAUTH_PATHS = {"/rest/oauth2/latest/token": "token"}

    def __init__(self, idp: FakeIdP, *, host: str = HOST) -> None:
        super().__init__(idp)
        self.host = host
        self.user: dict[str, Any] = {
            "name": "jdoe",
            "emailAddress": "jane.doe@example.com",
            "active": True,
            "displayName": "Jane Doe",
            "id": 101,
            "slug": "jdoe",
            "type": "NORMAL",
            "links": {"self": [{"href": f"https://{host}/users/jdoe"}]},
        }
        self.avatar_url = "/users/jdoe/avatar.png?s=256&v=1700000000000"

    def url(self, path: str) -> str:
        return f"https://{self.host}{path}"

    def route(self, request: RecordedRequest) -> str | None:
        if request.method != "GET":
            return None
        if request.path == WHOAMI_PATH:
            return "whoami"
        return "user" if request.path.startswith(USERS_PREFIX) else None

    def serve_whoami(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return httpx2.Response(200, text="")
        name = self.user["name"]
        return httpx2.Response(200, text=name, headers={"X-AUSERNAME": name, "X-AUSERID": "101"})

    def serve_user(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return _errors(401, "Authentication failed. Please check your credentials.")
        slug = request.path.removeprefix(USERS_PREFIX)
        if slug != self.user["slug"]:
            return _errors(404, f"User {slug} does not exist.")
        user = dict(self.user)
        if "avatarSize" in request.query:
            user["avatarUrl"] = self.avatar_url
        return httpx2.Response(200, json=user)


def _errors(status: int, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"errors": [{"context": None, "message": message}]})
