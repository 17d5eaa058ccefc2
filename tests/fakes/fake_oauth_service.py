"""A base for fakes of real OAuth services (GitHub, Google, GitLab, Microsoft, Okta).

Each fake is a callable ``httpx2.Request -> httpx2.Response`` for ``httpx2.MockTransport``.
Unlike ``FakeIdP``, routing is by the full URL (scheme, host and path; the query is
ignored), so a test against a fake proves the provider calls the documented endpoints:
anything else is a 404 that the test sees.

The base plays the authorization-code and refresh grants (PKCE S256 checked, client
credentials in the body or Basic), keeps issued tokens, and records every request.
Subclasses set ``urls`` (endpoint name -> URL; ``authorize`` and ``token`` at least), shape
token bodies (``token_body``) and error bodies (``oauth_error``), and serve their other
endpoints as ``serve_<name>(request)``.

Failure knobs: ``fail(endpoint, mode, times=None)`` with ``"5xx"`` (503 HTML),
``"garbage"`` (200, not JSON), ``"timeout"`` (``httpx2.ReadTimeout``), ``"network"``
(``httpx2.ConnectError``), ``"401"`` (401 JSON) or any OAuth error code (the service's
error body).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2

from app.providers.base import AuthenticateInput, AuthResult, OAuthAuthenticator, StartInput
from tests.fakes.fake_idp import RecordedRequest, s256, unsigned
from tests.providers.helpers import SECRETS, STATE

CLIENT_ID = "backstage-client"
CLIENT_SECRET = "backstage-secret"


def url_of(url: str) -> str:
    """Scheme, host and path: what the fakes route on."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def fake_jwt(claims: Mapping[str, Any]) -> str:
    """An unsigned JWT: the providers here only read ID tokens (and Microsoft access
    tokens) to fill gaps, never to decide who signs in."""
    return unsigned({"alg": "none", "typ": "JWT"}, claims)


@dataclass
class Grant:
    redirect_uri: str | None
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    used: bool = False


@dataclass
class FakeOAuthService:
    # The service's error codes for a bad code and a bad refresh token.
    BAD_CODE = "invalid_grant"
    BAD_REFRESH_TOKEN = "invalid_grant"

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    urls: dict[str, str] = field(default_factory=dict)
    access_token_lifetime: int = 3600
    access_token_prefix: str = "access-"
    rotate_refresh_tokens: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, str] = {}  # access token -> scope
        self.refresh_tokens: dict[str, str] = {}  # live refresh token -> scope
        self.last_authorize: dict[str, str] = {}
        self._counter = itertools.count(1)
        self._failures: dict[str, list[Any]] = {}

    # -- knobs -------------------------------------------------------------------------

    def fail(self, endpoint: str, mode: str, *, times: int | None = None) -> None:
        if endpoint not in self.urls:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(self.urls)}")
        self._failures[endpoint] = [mode, times]

    def next_id(self) -> int:
        return next(self._counter)

    def issue_refresh_token(self, scope: str) -> str:
        token = f"refresh-{self.next_id()}"
        self.refresh_tokens[token] = scope
        return token

    # -- the browser side ------------------------------------------------------------------

    def authorize(self, url: str) -> str:
        """Play the user at the authorize URL, consenting; return the authorization code."""
        assert url_of(url) == self.urls["authorize"], url
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        self.last_authorize = query
        assert query.get("client_id") == self.client_id, query
        assert query.get("response_type") == "code", query
        code = f"code-{self.next_id()}"
        self.grants[code] = Grant(
            redirect_uri=query.get("redirect_uri"),
            scope=query.get("scope", ""),
            code_challenge=query.get("code_challenge"),
            code_challenge_method=query.get("code_challenge_method"),
        )
        return code

    # -- recording helpers -------------------------------------------------------------------

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        return [r for r in self.requests if url_of(r.url) == self.urls[endpoint]]

    def last_request_to(self, endpoint: str) -> RecordedRequest:
        found = self.requests_to(endpoint)
        assert found, f"no request to {endpoint}"
        return found[-1]

    # -- the transport -------------------------------------------------------------------------

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = request.content.decode() if request.content else ""
        is_form = "application/x-www-form-urlencoded" in request.headers.get("content-type", "")
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            url=str(request.url),
            query=dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)),
            form=dict(parse_qsl(body, keep_blank_values=True)) if is_form else {},
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(recorded)
        target = url_of(str(request.url))
        endpoint = next((name for name, url in self.urls.items() if url == target), None)
        if endpoint is None:
            return httpx2.Response(404, json={"message": "Not Found"})
        failure = self._failures.get(endpoint)
        if failure is not None:
            mode, times = failure
            if times is not None:
                failure[1] = times - 1
                if times - 1 <= 0:
                    del self._failures[endpoint]
            return self._failure(mode, request)
        handler: Callable[[RecordedRequest], httpx2.Response] = getattr(self, f"serve_{endpoint}")
        return handler(recorded)

    def _failure(self, mode: str, request: httpx2.Request) -> httpx2.Response:
        if mode == "5xx":
            return httpx2.Response(503, text="<html>service unavailable</html>")
        if mode == "garbage":
            return httpx2.Response(200, text="<html>", headers={"content-type": "application/json"})
        if mode == "timeout":
            raise httpx2.ReadTimeout("fake service timed out", request=request)
        if mode == "network":
            raise httpx2.ConnectError("fake service unreachable", request=request)
        if mode == "401":
            return httpx2.Response(401, json={"message": "Bad credentials"})
        return self.oauth_error(mode, f"the fake says {mode}")

    # -- the token endpoint ----------------------------------------------------------------------

    def oauth_error(self, error: str, description: str) -> httpx2.Response:
        return httpx2.Response(400, json={"error": error, "error_description": description})

    def token_body(self, scope: str, *, refresh_token: str | None) -> dict[str, Any]:
        """RFC 6749 5.1; subclasses reshape it as their service does."""
        access = f"{self.access_token_prefix}{self.next_id()}"
        self.access_tokens[access] = scope
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "scope": scope,
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return body

    def token_response(self, body: dict[str, Any], request: RecordedRequest) -> httpx2.Response:
        return httpx2.Response(200, json=body)

    def _client_ok(self, request: RecordedRequest) -> bool:
        post = (request.form.get("client_id"), request.form.get("client_secret"))
        expected = (self.client_id, self.client_secret)
        return post == expected or request.basic_auth == expected

    def serve_token(self, request: RecordedRequest) -> httpx2.Response:
        if request.method != "POST":
            return httpx2.Response(405)
        if not self._client_ok(request):
            return self.oauth_error("invalid_client", "client authentication failed")
        grant_type = request.form.get("grant_type")
        if grant_type == "authorization_code":
            return self._code_grant(request)
        if grant_type == "refresh_token":
            return self._refresh_grant(request)
        return self.oauth_error("unsupported_grant_type", str(grant_type))

    def _code_grant(self, request: RecordedRequest) -> httpx2.Response:
        form = request.form
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.used:
            return self.oauth_error(self.BAD_CODE, "unknown or used authorization code")
        grant.used = True
        if grant.redirect_uri != form.get("redirect_uri"):
            return self.oauth_error(self.BAD_CODE, "redirect_uri mismatch")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier")
            if grant.code_challenge_method != "S256" or verifier is None:
                return self.oauth_error(self.BAD_CODE, "PKCE verifier missing")
            if s256(verifier) != grant.code_challenge:
                return self.oauth_error(self.BAD_CODE, "PKCE verification failed")
        refresh = self.issue_refresh_token(grant.scope)
        return self.token_response(self.token_body(grant.scope, refresh_token=refresh), request)

    def _refresh_grant(self, request: RecordedRequest) -> httpx2.Response:
        token = request.form.get("refresh_token", "")
        scope = self.refresh_tokens.get(token)
        if scope is None:
            return self.oauth_error(
                self.BAD_REFRESH_TOKEN, "unknown, used or revoked refresh token"
            )
        new = None
        if self.rotate_refresh_tokens:
            del self.refresh_tokens[token]
            new = self.issue_refresh_token(scope)
        body = self.token_body(request.form.get("scope") or scope, refresh_token=new)
        return self.token_response(body, request)

    def bearer_scope(self, request: RecordedRequest) -> str | None:
        """The scope of the request's bearer access token; None when it is not one of ours."""
        return self.access_tokens.get(request.bearer or "")


async def sign_in(
    auth: OAuthAuthenticator, fake: FakeOAuthService, *, callback: str, scope: str
) -> AuthResult:
    """start -> the user consents at the fake -> callback -> authenticate."""
    started = await auth.start(
        StartInput(state=STATE, scope=scope, callback_url=callback, secrets=SECRETS)
    )
    code = fake.authorize(started.url)
    return await auth.authenticate(
        AuthenticateInput(
            params={"code": code, "state": STATE}, callback_url=callback, secrets=SECRETS
        )
    )
