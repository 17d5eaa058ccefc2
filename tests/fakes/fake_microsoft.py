"""A fake Microsoft identity platform and Microsoft Graph, shaped after Microsoft's docs
("OAuth 2.0 authorization code flow", "Get user", "Get profilePhoto").

- ``GET https://login.microsoftonline.com/<tenant>/oauth2/v2.0/authorize`` and ``POST
  .../token``. Access tokens are JWTs for one resource: scopes of the form
  ``<resource>/<scope>`` give a token for that resource (``aud`` = the resource), the rest
  a Graph token (``aud`` = Graph's app id, ``scp`` = the scopes). Every grant returns a new
  refresh token (the old one keeps working), usable for any resource.
- ``GET https://graph.microsoft.com/v1.0/me``: the user, for a Graph token with
  ``User.Read``, else 401 ``InvalidAuthenticationToken``.
- ``GET https://graph.microsoft.com/v1.0/me/photos/96x96/$value``: JPEG bytes, or 404
  ``ImageNotFound`` when the user has no photo (``photo=None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.fakes.fake_idp import RecordedRequest
from tests.fakes.fake_oauth_service import FakeOAuthService, fake_jwt

TENANT = "contoso.onmicrosoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
OBJECT_ID = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
PHOTO = b"\xff\xd8\xff\xe0 a tiny jpeg"
OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}


def graph_user(**overrides: Any) -> dict[str, Any]:
    user: dict[str, Any] = {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "businessPhones": ["+1 425 555 0109"],
        "displayName": "Adele Vance",
        "givenName": "Adele",
        "jobTitle": "Retail Manager",
        "mail": "AdeleV@contoso.com",
        "preferredLanguage": "en-US",
        "surname": "Vance",
        "userPrincipalName": "AdeleV@contoso.com",
        "id": OBJECT_ID,
    }
    user.update(overrides)
    return user


def _graph_error(status: int, code: str, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"error": {"code": code, "message": message}})


@dataclass
class FakeMicrosoft(FakeOAuthService):
    tenant: str = TENANT
    user: dict[str, Any] = field(default_factory=graph_user)
    photo: bytes | None = PHOTO
    # Extra ID token claims (``email_verified``, ...).
    id_token_claims: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.access_token_lifetime = 3599
        login = f"https://login.microsoftonline.com/{self.tenant}/oauth2/v2.0"
        self.urls = {
            "authorize": f"{login}/authorize",
            "token": f"{login}/token",
            "profile": "https://graph.microsoft.com/v1.0/me",
            "photo": "https://graph.microsoft.com/v1.0/me/photos/96x96/$value",
        }

    def token_body(self, scope: str, *, refresh_token: str | None) -> dict[str, Any]:
        scopes = scope.split()
        resource = next((s.rsplit("/", 1)[0] for s in scopes if "/" in s), None)
        claims = {
            "aud": resource or GRAPH_APP_ID,
            "scp": " ".join(s.rsplit("/", 1)[-1] for s in scopes if s not in OIDC_SCOPES),
            "oid": OBJECT_ID,
            "n": self.next_id(),
        }
        access = fake_jwt(claims)
        self.access_tokens[access] = scope
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": access,
            # Microsoft always sends a new refresh token (with offline_access).
            "refresh_token": refresh_token or self.issue_refresh_token(scope),
        }
        if "openid" in scopes:
            body["id_token"] = fake_jwt(
                {
                    "aud": self.client_id,
                    "iss": f"https://login.microsoftonline.com/{self.tenant}/v2.0",
                    "oid": OBJECT_ID,
                    "email": "adele.from.id.token@contoso.com",
                    "name": "Adele (ID token)",
                    "preferred_username": "AdeleV@contoso.com",
                    **self.id_token_claims,
                }
            )
        return body

    def _graph_ok(self, request: RecordedRequest) -> bool:
        scope = self.bearer_scope(request)
        if scope is None or any("/" in s for s in scope.split()):
            return False
        return any(s.lower() in {"user.read", "user.read.all"} for s in scope.split())

    def serve_profile(self, request: RecordedRequest) -> httpx2.Response:
        if not self._graph_ok(request):
            return _graph_error(
                401, "InvalidAuthenticationToken", "Access token validation failure."
            )
        return httpx2.Response(200, json=self.user)

    def serve_photo(self, request: RecordedRequest) -> httpx2.Response:
        if not self._graph_ok(request):
            return _graph_error(
                401, "InvalidAuthenticationToken", "Access token validation failure."
            )
        if self.photo is None:
            return _graph_error(404, "ImageNotFound", "The photo wasn't found.")
        return httpx2.Response(200, content=self.photo, headers={"content-type": "image/jpeg"})
