"""A fake OpenShift cluster: its OAuth server and the API server's user/oauth APIs.

Shaped after the OpenShift API reference: the OAuth server's ``/oauth/authorize`` and
``/oauth/token`` issue ``sha256~`` access tokens and no refresh token;
``GET /apis/user.openshift.io/v1/users/~`` is the token's ``User`` object;
``DELETE /apis/oauth.openshift.io/v1/oauthaccesstokens/<name>`` deletes a token's
``OAuthAccessToken``, whose name is ``sha256~`` + unpadded base64url(SHA-256 of the token
without its prefix). Errors are Kubernetes ``Status`` objects.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx2

from tests.fakes.fake_idp import FakeIdP, RecordedRequest
from tests.fakes.service_fake import ServiceFake

OAUTH_SERVER = "https://oauth-openshift.apps.example.test"
API_SERVER = "https://api.example.test:6443"
USER_PATH = "/apis/user.openshift.io/v1/users/~"
TOKENS_PREFIX = "/apis/oauth.openshift.io/v1/oauthaccesstokens/"


def object_name(token: str) -> str:
    digest = hashlib.sha256(token.removeprefix("sha256~").encode()).digest()
    return "sha256~" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


class FakeOpenShift(ServiceFake):
    OAUTH_PATHS = {"/oauth/token": "token"}

    def __init__(self, idp: FakeIdP) -> None:
        super().__init__(idp)
        self.deleted: list[str] = []
        self.user: dict[str, Any] = {
            "kind": "User",
            "apiVersion": "user.openshift.io/v1",
            "metadata": {
                "name": "jdoe",
                "uid": "4f1d5a3e-0000-4000-8000-000000000001",
                "resourceVersion": "12345",
                "creationTimestamp": "2024-01-01T00:00:00Z",
            },
            "fullName": "Jane Doe",
            "identities": ["htpasswd_provider:jdoe"],
            "groups": ["system:authenticated", "system:authenticated:oauth"],
        }

    def shape_token(self, body: dict[str, Any]) -> dict[str, Any]:
        shaped = {k: v for k, v in body.items() if k not in ("refresh_token", "id_token")}
        return {**shaped, "access_token": "sha256~" + body["access_token"]}

    def route(self, request: RecordedRequest) -> str | None:
        if (request.method, request.path) == ("GET", USER_PATH):
            return "user"
        if request.method == "DELETE" and request.path.startswith(TOKENS_PREFIX):
            return "delete_token"
        return None

    def serve_user(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return _status(401, "Unauthorized", "Unauthorized")
        return httpx2.Response(200, json=self.user)

    def serve_delete_token(self, request: RecordedRequest) -> httpx2.Response:
        if not self.authorized(request):
            return _status(401, "Unauthorized", "Unauthorized")
        name = request.path.removeprefix(TOKENS_PREFIX)
        token = next((t for t in self.access_tokens if object_name(t) == name), None)
        if token is None:
            return _status(404, "NotFound", f'oauthaccesstokens "{name}" not found')
        if token != request.bearer:
            return _status(403, "Forbidden", "cannot delete another user's token")
        self.revoke(token)
        self.deleted.append(name)
        details = {"name": name, "group": "oauth.openshift.io", "kind": "oauthaccesstokens"}
        return httpx2.Response(200, json={**_status_body("Success", None, 200), "details": details})


def _status_body(status: str, reason: str | None, code: int) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    body.update({"status": status, "code": code})
    if reason:
        body["reason"] = reason
    return body


def _status(code: int, reason: str, message: str) -> httpx2.Response:
    return httpx2.Response(code, json={**_status_body("Failure", reason, code), "message": message})
