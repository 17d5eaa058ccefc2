"""POST /api/auth/<id>/logout (protocol reference section 5)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from app.oauth.sessions import RefreshSession, SessionCodec
from tests.fakes.app_factory import BASE_CONFIG, JarlessClient, build_app, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import REFRESH_TOKEN, StubAuthenticator, StubProvider

from .conftest import World
from .helpers import XRW, assert_json_error, cookie_header, set_cookies, sign_in

LOGOUT = "/api/auth/stub/logout"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """This module's own app, without response validation: an empty 200 (what Backstage
    and we send when there is no logoutUrl) fails validation against the spec, a spec
    bug pinned by test_errors.py::test_empty_logout_response_conforms_to_the_spec."""
    clock = FakeClock()
    stub = StubProvider()
    stub_persist = StubProvider(persist_scopes=True, required_scopes=("openid",))
    app = build_app(clock=clock, stub=stub, stub_persist=stub_persist, validate_responses=False)
    with make_client(app) as client:
        yield World(clock, stub, stub_persist, app, client)


def logout(
    client: JarlessClient,
    jar: dict[str, str] | None = None,
    *,
    provider: str = "stub",
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    return client.post(
        f"/api/auth/{provider}/logout",
        params={"env": "development"},
        headers={**XRW, **(cookie_header(jar) if jar else {}), **(headers or {})},
    )


def test_requires_x_requested_with(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    jar = sign_in(client)
    response = client.post(LOGOUT, params={"env": "development"}, headers=cookie_header(jar))
    assert response.json() == {
        "error": {"name": "AuthenticationError", "message": "Invalid X-Requested-With header"},
        "request": {"method": "POST", "url": "/stub/logout?env=development"},
        "response": {"statusCode": 401},
    }
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert stub_auth.logouts == []


def test_missing_env(client: JarlessClient) -> None:
    response = client.post(LOGOUT, headers=XRW)
    assert_json_error(response, 400, "InputError", "Must specify 'env' query to select environment")


@pytest.mark.parametrize(
    ("origin", "shown"),
    [
        ("http://evil.test", "http://evil.test"),
        ("null", "null"),
        ("http://localhost:3000.evil.test", "http://localhost:3000.evil.test"),
    ],
)
def test_disallowed_origin_header(
    client: JarlessClient, stub_auth: StubAuthenticator, origin: str, shown: str
) -> None:
    jar = sign_in(client)
    response = logout(client, jar, headers={"Origin": origin})
    assert_json_error(response, 403, "NotAllowedError", f"Origin '{shown}' is not allowed")
    assert "set-cookie" not in response.headers
    assert stub_auth.logouts == []


@pytest.mark.parametrize("origin", ["http://localhost:3000", "https://app.example.com"])
def test_allowed_origin_header(client: JarlessClient, origin: str) -> None:
    response = logout(client, sign_in(client), headers={"Origin": origin})
    assert response.status_code == 200


def test_clears_the_refresh_cookie(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    jar = sign_in(client)
    response = logout(client, jar, headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 200
    assert response.content == b""
    assert "content-type" not in response.headers
    [cleared] = set_cookies(response)  # no legacy Domain variant on removal
    assert cleared.name == "stub-refresh-token"
    assert cleared.value == ""
    assert cleared.attribute_names == ["Max-Age", "Path", "Expires", "HttpOnly", "SameSite"]
    assert cleared.attr("Max-Age") == "0"
    assert cleared.attr("Path") == "/api/auth/stub"
    assert cleared.attr("SameSite") == "Lax"
    # The provider got the session's refresh token (to revoke it) and the origin.
    [call] = stub_auth.logouts
    assert call.refresh_token == REFRESH_TOKEN
    assert call.app_origin == "http://localhost:3000"


def test_nothing_to_clear_without_cookies(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    response = logout(client)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    [call] = stub_auth.logouts
    assert call.refresh_token is None


def test_clears_every_chunk(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    stub_auth.refresh_token_out = "z" * 6000
    jar = sign_in(client)
    chunks = sorted(k for k in jar if k.startswith("stub-refresh-token-"))
    assert len(chunks) >= 2
    response = logout(client, jar)
    assert sorted(c.name for c in set_cookies(response)) == chunks
    assert all(c.attr("Max-Age") == "0" for c in set_cookies(response))
    assert stub_auth.logouts[-1].refresh_token == "z" * 6000


def test_invalid_session_cookie_is_still_cleared(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    response = logout(client, {"stub-refresh-token": "garbage"})
    assert response.status_code == 200
    assert [c.name for c in set_cookies(response)] == ["stub-refresh-token"]
    assert stub_auth.logouts[-1].refresh_token is None


def test_persisting_provider_clears_granted_scope(client: JarlessClient) -> None:
    jar = sign_in(client, "stubpersist", scope="repo")
    response = logout(client, jar, provider="stubpersist")
    assert response.status_code == 200
    assert [c.name for c in set_cookies(response)] == [
        "stubpersist-refresh-token",
        "stubpersist-granted-scope",
    ]


@pytest.mark.parametrize(
    ("url", "passed"),
    [
        ("https://idp.example.com/logout?x=1", True),
        ("http://localhost:3000/signed-out", True),
        ("http://localhost/x", True),
        ("http://idp.invalid/logout", False),
        ("javascript:alert(1)", False),
        ("not a url", False),
    ],
)
def test_logout_url_only_if_https_or_localhost(
    client: JarlessClient, stub_auth: StubAuthenticator, url: str, passed: bool
) -> None:
    stub_auth.logout_url = url
    response = logout(client, sign_in(client))
    assert response.status_code == 200
    if passed:
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.json() == {"logoutUrl": url}
    else:
        assert response.content == b""
    assert [c.name for c in set_cookies(response)] == ["stub-refresh-token"]


# -- the session ends on the server ----------------------------------------------------


def refresh(client: JarlessClient, jar: dict[str, str]) -> httpx2.Response:
    return client.get(
        "/api/auth/stub/refresh",
        params={"env": "development"},
        headers={**XRW, **cookie_header(jar)},
    )


def test_a_copy_of_the_cookie_is_refused_after_logout(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    # Taken before sign-out (a stolen cookie, another tab): the provider still honours
    # the refresh token (the stub never revokes), the server does not.
    jar = sign_in(client)
    assert refresh(client, jar).status_code == 200
    assert logout(client, jar).status_code == 200
    response = refresh(client, jar)
    assert response.status_code == 401
    assert response.json()["error"]["cause"] == {
        "name": "AuthenticationError",
        "message": "Session ended",
    }
    # Refused without a call to the provider.
    assert len(stub_auth.refreshes) == 1


def test_a_rotated_cookie_of_an_ended_session_is_refused(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    jar = sign_in(client)
    stub_auth.refresh_mode = "rotate"
    rotated = {c.name: c.value for c in set_cookies(refresh(client, jar)) if c.value}
    assert rotated and rotated != jar
    stub_auth.refresh_mode = "keep"
    assert refresh(client, rotated).status_code == 200
    logout(client, jar)
    assert refresh(client, rotated).status_code == 401
    assert len(stub_auth.refreshes) == 2


def test_logout_ends_only_its_own_session(client: JarlessClient) -> None:
    mine, other = sign_in(client), sign_in(client)
    logout(client, mine)
    assert refresh(client, mine).status_code == 401
    assert refresh(client, other).status_code == 200


def test_a_legacy_cookie_without_a_session_id_keeps_working(
    client: JarlessClient, clock: FakeClock, stub_auth: StubAuthenticator
) -> None:
    # Sealed before sessions had ids: valid until it expires; logout cannot end a copy.
    codec = SessionCodec([BASE_CONFIG["auth"]["session"]["secret"]])
    legacy = RefreshSession(REFRESH_TOKEN, "stub", "development", "openid", int(clock.now()))
    jar = {"stub-refresh-token": codec.seal(legacy, cookie_name="stub-refresh-token")}
    assert refresh(client, jar).status_code == 200
    assert logout(client, jar).status_code == 200
    assert stub_auth.logouts[-1].refresh_token == REFRESH_TOKEN
    assert refresh(client, jar).status_code == 200


def test_get_logout_is_not_routed(client: JarlessClient) -> None:
    # Backstage answers 404 "Unknown auth provider 'stub'" (catch-all); we answer 405 with
    # Allow, which the spec documents. No client sends GET /logout.
    response = client.get(LOGOUT, params={"env": "development"}, headers=XRW)
    assert_json_error(
        response,
        405,
        "MethodNotAllowedError",
        "Method GET is not allowed for /api/auth/stub/logout",
    )
    assert response.headers["allow"] == "POST"
