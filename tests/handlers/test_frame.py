"""GET|POST /api/auth/<id>/handler/frame (protocol reference section 3)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx2
import pytest

from tests.fakes.app_factory import BACKEND_BASE_URL, JarlessClient, build_app
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import (
    ACCESS_TOKEN,
    EXPIRES_IN,
    ID_TOKEN,
    REFRESH_TOKEN,
    TOKEN_SCOPE,
    VALID_CODE,
    StubAuthenticator,
    StubProvider,
)

from .helpers import (
    APP_ORIGIN,
    Started,
    assert_json_error,
    encode_state,
    http_date,
    page,
    set_cookies,
    start,
)

pytestmark = pytest.mark.anyio

FRAME = "/api/auth/stub/handler/frame"
PROFILE_JSON = {
    "email": "jane.doe@example.com",
    "displayName": "Jane Doe",
    "picture": "http://idp.invalid/jane.png",
}
IDENTITY = {
    "type": "user",
    "userEntityRef": "user:default/jane.doe",
    "ownershipEntityRefs": ["user:default/jane.doe"],
}


def callback(
    client: JarlessClient,
    started: Started,
    *,
    code: str = VALID_CODE,
    cookie: str | None = None,
    path: str = "handler/frame",
    headers: dict[str, str] | None = None,
    **extra: str,
) -> httpx2.Response:
    params = {"code": code, "state": started.state, **extra}
    cookie_header = (
        cookie if cookie is not None else f"{started.provider}-nonce={started.nonce_cookie}"
    )
    return client.get(
        f"/api/auth/{started.provider}/{path}",
        params=params,
        headers={**({"Cookie": cookie_header} if cookie_header else {}), **(headers or {})},
    )


def error_message(name: str, message: str) -> dict[str, Any]:
    return {"type": "authorization_response", "error": {"name": name, "message": message}}


# -- success ---------------------------------------------------------------------------


def test_popup_success_page(
    client: JarlessClient, clock: FakeClock, stub_auth: StubAuthenticator
) -> None:
    started = start(client, origin=APP_ORIGIN, flow="popup")
    response = callback(client, started)
    message, origin = page(response)
    assert origin == APP_ORIGIN
    assert message["type"] == "authorization_response"
    body = message["response"]
    assert list(body) == ["profile", "providerInfo", "backstageIdentity"]
    assert body["profile"] == PROFILE_JSON
    # Backstage's key order; the token response's scope for a non-persisting provider.
    assert list(body["providerInfo"].items()) == [
        ("idToken", ID_TOKEN),
        ("accessToken", ACCESS_TOKEN),
        ("scope", TOKEN_SCOPE),
        ("expiresInSeconds", EXPIRES_IN),
    ]
    identity = body["backstageIdentity"]
    assert identity["identity"] == IDENTITY
    assert identity["expiresInSeconds"] == 3600
    assert identity["token"].count(".") == 2
    # Tokens in the page: never cached.
    assert response.headers["cache-control"] == "no-store"
    # The authenticator saw the IdP's parameters and the callback URL.
    [call] = stub_auth.authentications
    assert call.params == {"code": VALID_CODE, "state": started.state}
    assert call.callback_url == "http://localhost:7007/api/auth/stub/handler/frame"


def test_popup_success_cookies(client: JarlessClient, clock: FakeClock) -> None:
    started = start(client)
    cookies = set_cookies(callback(client, started))
    names = [(c.name, bool(c.value)) for c in cookies]
    assert names == [
        ("stub-refresh-token", False),  # legacy Domain cleanup
        ("stub-refresh-token", True),
        ("stub-nonce", False),  # single use
    ]
    legacy, refresh, nonce = cookies
    assert legacy.attr("Domain") == "localhost" and legacy.attr("Max-Age") == "0"
    assert legacy.attr("Path") == "/api/auth/stub"
    assert refresh.attribute_names == ["Max-Age", "Path", "Expires", "HttpOnly", "SameSite"]
    assert refresh.attr("Max-Age") == "86400000"  # 1000 days
    assert refresh.attr("Path") == "/api/auth/stub"
    assert refresh.attr("Expires") == http_date(clock.now() + 86400000)
    assert refresh.attr("SameSite") == "Lax"
    # Sealed (ours, not Backstage's plain text): the IdP's token is not readable.
    assert REFRESH_TOKEN not in refresh.value
    assert nonce.attr("Max-Age") == "0"
    assert nonce.attr("Path") == "/api/auth/stub/handler"
    assert not nonce.has("Domain")


def test_nonce_is_single_use(client: JarlessClient) -> None:
    # A replay: the browser dropped the nonce cookie after the first callback.
    started = start(client)
    callback(client, started)
    message, _ = page(callback(client, started, cookie=""))
    assert message == error_message("NotAllowedError", "Auth response is missing cookie nonce")


def test_a_replay_with_a_planted_nonce_cookie_is_refused(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    # Login CSRF: whoever can set cookies for the host plants the nonce of a callback URL
    # and replays it; the nonce is spent on the server, whatever the cookie says.
    started = start(client)
    assert page(callback(client, started))[0]["type"] == "authorization_response"
    message, _ = page(callback(client, started))
    assert message == error_message("NotAllowedError", "Invalid nonce, the state was used already")
    # Refused before the code is redeemed at the identity provider.
    assert len(stub_auth.authentications) == 1


def test_a_failed_callback_spends_the_nonce_too(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    started = start(client)
    callback(client, started, code="nope")
    message, _ = page(callback(client, started))
    assert message == error_message("NotAllowedError", "Invalid nonce, the state was used already")
    assert len(stub_auth.authentications) == 1


def test_an_identity_provider_error_leaves_the_nonce_usable(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    # Backstage answers an ?error= callback with the rejection, whatever came before
    # (the peer comparison's exchange 29); it signs no one in.
    started = start(client)
    for _ in range(2):
        message, _ = page(callback(client, started, error="access_denied"))
        assert message["error"]["message"] == "Authentication rejected, access_denied"
    assert page(callback(client, started))[0]["response"]["profile"]


def test_a_used_nonce_is_forgotten_after_an_hour(client: JarlessClient, clock: FakeClock) -> None:
    started = start(client)
    callback(client, started)
    clock.advance(3600)
    assert "response" in page(callback(client, started))[0]


def test_long_refresh_token_is_chunked(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    stub_auth.refresh_token_out = "x" * 9000
    cookies = [c for c in set_cookies(callback(client, start(client))) if c.value]
    names = [c.name for c in cookies]
    assert names == [f"stub-refresh-token-{i}" for i in range(len(names))]
    assert len(names) >= 3
    assert all(len(c.value) == 4000 for c in cookies[:-1])
    assert 0 < len(cookies[-1].value) <= 4000
    assert all(c.attr("Path") == "/api/auth/stub" for c in cookies)


def test_no_refresh_token_no_cookie(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    stub_auth.refresh_token_out = ""
    cookies = set_cookies(callback(client, start(client)))
    assert [c.name for c in cookies] == ["stub-nonce"]


def test_without_sign_in_resolver_no_backstage_identity(client: JarlessClient) -> None:
    started = start(client, env="nosignin")
    message, _ = page(callback(client, started))
    assert list(message["response"]) == ["profile", "providerInfo"]


def test_persisting_provider_sets_granted_scope(client: JarlessClient) -> None:
    started = start(client, "stubpersist", scope="repo")
    response = callback(client, started)
    message, _ = page(response)
    # The granted scope is the state's, not the token response's.
    assert message["response"]["providerInfo"]["scope"] == "repo openid"
    cookies = [(c.name, c.value or None) for c in set_cookies(response)]
    assert cookies[:2] == [
        ("stubpersist-granted-scope", None),
        ("stubpersist-granted-scope", "repo%20openid"),
    ]
    assert [name for name, _ in cookies[2:]] == [
        "stubpersist-refresh-token",
        "stubpersist-refresh-token",
        "stubpersist-nonce",
    ]
    granted = set_cookies(response)[1]
    assert granted.attr("Path") == "/api/auth/stubpersist"
    assert granted.attr("Max-Age") == "86400000"


def test_persisting_provider_without_scope_in_state(client: JarlessClient) -> None:
    started = start(client, "stubpersist")
    forged = encode_state({"nonce": unquote(started.nonce_cookie), "env": "development"})
    response = client.get(
        "/api/auth/stubpersist/handler/frame",
        params={"code": VALID_CODE, "state": forged},
        headers=started.cookie_header,
    )
    message, _ = page(response)
    assert message == error_message("AuthenticationError", "No scope found in OAuth state")
    # Nothing is set; only the spent nonce is cleared.
    assert all(
        c.startswith("stub") and "-nonce=;" in c and "Max-Age=0" in c
        for c in response.headers.get_list("set-cookie")
    )


def test_page_posts_to_state_origin(client: JarlessClient) -> None:
    started = start(client, origin="https://app.example.com")
    message, origin = page(callback(client, started))
    assert origin == "https://app.example.com"
    assert "response" in message


def test_alias_frame_handler(client: JarlessClient) -> None:
    message, _ = page(callback(client, start(client), path="frame/handler"))
    assert message["response"]["backstageIdentity"]["identity"] == IDENTITY


def test_env_query_overrides_state(client: JarlessClient) -> None:
    # A callbackUrl with ?env= selects the environment without decoding the state first.
    started = start(client)
    message, _ = page(callback(client, started, env="development"))
    assert "response" in message


def test_json_only_client_gets_auth_result(client: JarlessClient) -> None:
    response = callback(client, start(client), headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["type"] == "auth-result"
    payload = body["payload"]
    assert payload["accessToken"] == ACCESS_TOKEN
    assert payload["idToken"] == ID_TOKEN
    assert payload["scope"] == TOKEN_SCOPE
    assert payload["expiresInSeconds"] == EXPIRES_IN
    assert [c.name for c in set_cookies(response) if c.value] == ["stub-refresh-token"]


def test_json_only_client_gets_auth_error(client: JarlessClient) -> None:
    response = callback(
        client, start(client), cookie="stub-nonce=wrong", headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "type": "auth-result",
        "error": {"name": "NotAllowedError", "message": "Invalid nonce"},
    }


def test_browser_accept_gets_the_page(client: JarlessClient) -> None:
    response = callback(
        client,
        start(client),
        headers={"Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"},
    )
    page(response)


# -- errors on the page (inside the try, section 3.5) ----------------------------------


def test_missing_nonce_cookie(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    response = callback(client, start(client), cookie="")
    message, origin = page(response)
    assert message == error_message("NotAllowedError", "Auth response is missing cookie nonce")
    assert origin == APP_ORIGIN
    assert "set-cookie" not in response.headers
    assert stub_auth.authentications == []


def test_wrong_nonce(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    started = start(client)
    other = start(client)
    response = callback(client, started, cookie=f"stub-nonce={other.nonce_cookie}")
    message, _ = page(response)
    assert message == error_message("NotAllowedError", "Invalid nonce")
    assert stub_auth.authentications == []
    # A failed callback spends the nonce too.
    [cleared] = response.headers.get_list("set-cookie")
    assert cleared.startswith("stub-nonce=;") and "Max-Age=0" in cleared
    assert "Path=/api/auth/stub/handler" in cleared


def test_nonce_cookie_of_another_provider_does_not_count(client: JarlessClient) -> None:
    started = start(client)
    message, _ = page(callback(client, started, cookie=f"other-nonce={started.nonce_cookie}"))
    assert message == error_message("NotAllowedError", "Auth response is missing cookie nonce")


def test_idp_access_denied(client: JarlessClient) -> None:
    started = start(client)
    response = client.get(
        FRAME,
        params={
            "error": "access_denied",
            "error_description": "User denied",
            "state": started.state,
        },
        headers=started.cookie_header,
    )
    message, _ = page(response)
    assert message == error_message("Error", "Authentication rejected, User denied")


def test_bad_code(client: JarlessClient) -> None:
    message, _ = page(callback(client, start(client), code="nope"))
    assert message == error_message("Error", "Authentication failed, Failed to obtain access token")


def test_error_text_cannot_break_out_of_the_script(client: JarlessClient) -> None:
    evil = "');</script><script>alert(1)</script>"
    started = start(client)
    response = client.get(
        FRAME,
        params={"error": "x", "error_description": evil, "state": started.state},
        headers=started.cookie_header,
    )
    assert response.text.count("</script>") == 1
    assert response.text.count("<script>") == 1
    message, _ = page(response)
    assert message["error"]["message"] == f"Authentication failed, {evil}"


def test_disallowed_origin_in_state(client: JarlessClient) -> None:
    started = start(client)
    forged = encode_state(
        {"nonce": unquote(started.nonce_cookie), "env": "development", "origin": "http://evil.test"}
    )
    response = client.get(
        FRAME, params={"code": VALID_CODE, "state": forged}, headers=started.cookie_header
    )
    message, origin = page(response)
    assert message == error_message("NotAllowedError", "Origin 'http://evil.test' is not allowed")
    # Never posted to the unvalidated origin.
    assert origin == APP_ORIGIN


def test_unparsable_origin_in_state_is_not_allowed_error(client: JarlessClient) -> None:
    started = start(client)
    forged = encode_state(
        {"nonce": unquote(started.nonce_cookie), "env": "development", "origin": "garbage"}
    )
    response = client.get(
        FRAME, params={"code": VALID_CODE, "state": forged}, headers=started.cookie_header
    )
    message, _ = page(response)
    assert message == error_message("NotAllowedError", "App origin is invalid, failed to parse")


def test_state_garbage_with_env_query_is_a_page(client: JarlessClient) -> None:
    response = client.get(FRAME, params={"env": "development", "state": "zz"})
    message, _ = page(response)
    assert message == error_message("NotAllowedError", "OAuth state is invalid, missing env")


# -- errors before the handler's try: JSON (section 1.4) -------------------------------


def test_garbage_state_is_json_403(client: JarlessClient) -> None:
    response = client.get(FRAME, params={"state": "not-hex", "code": "x"})
    assert_json_error(
        response,
        403,
        "NotAllowedError",
        "OAuth state is invalid, missing env",
        url="/stub/handler/frame?state=not-hex&code=x",
    )


def test_state_without_nonce_is_json_403(client: JarlessClient) -> None:
    response = client.get(FRAME, params={"state": encode_state({"env": "development"})})
    assert_json_error(response, 403, "NotAllowedError", "OAuth state is invalid, missing nonce")


def test_no_state_is_json_400(client: JarlessClient) -> None:
    response = client.get(FRAME, params={"code": "x"})
    assert_json_error(response, 400, "InputError", "Must specify 'env' query to select environment")


def test_state_with_unknown_env_is_json_404(client: JarlessClient) -> None:
    response = client.get(FRAME, params={"state": encode_state({"nonce": "n", "env": "staging"})})
    assert_json_error(
        response,
        404,
        "NotFoundError",
        "No configuration available for the 'staging' environment of this provider.",
    )


# -- redirect flow ---------------------------------------------------------------------


def test_redirect_flow_success(client: JarlessClient) -> None:
    started = start(client, flow="redirect", redirectUrl="http://localhost:3000/catalog?x=1#top")
    response = callback(client, started)
    assert response.status_code == 302
    assert response.headers["location"] == "http://localhost:3000/catalog?x=1#top"
    assert [c.name for c in set_cookies(response) if c.value] == ["stub-refresh-token"]


def test_redirect_flow_failure_goes_back_to_the_app(client: JarlessClient) -> None:
    started = start(client, flow="redirect", redirectUrl="http://localhost:3000/catalog")
    response = callback(client, started, cookie="stub-nonce=wrong")
    assert response.status_code == 302
    assert response.headers["location"] == (
        "http://localhost:3000/?error=NotAllowedError%3A+the+sign-in+request+was+not+allowed"
    )
    # Nothing is set; only the spent nonce is cleared.
    assert all(
        c.startswith("stub") and "-nonce=;" in c and "Max-Age=0" in c
        for c in response.headers.get_list("set-cookie")
    )


def test_redirect_flow_idp_error(client: JarlessClient) -> None:
    started = start(client, flow="redirect", redirectUrl="http://localhost:3000/catalog")
    response = client.get(
        FRAME,
        params={"error": "access_denied", "error_description": "No way", "state": started.state},
        headers=started.cookie_header,
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == ("http", "localhost:3000", "/")
    # The provider's words are not repeated to the app (issue 15, item 13).
    assert dict(parse_qsl(location.query)) == {"error": "Error: sign-in failed"}


def test_redirect_flow_forged_redirect_url(client: JarlessClient) -> None:
    started = start(client)
    forged = encode_state(
        {
            "nonce": unquote(started.nonce_cookie),
            "env": "development",
            "redirectUrl": "http://evil.test/",
            "flow": "redirect",
        }
    )
    response = client.get(
        FRAME, params={"code": VALID_CODE, "state": forged}, headers=started.cookie_header
    )
    assert response.status_code == 302
    assert response.headers["location"] == (
        "http://localhost:3000/?error=NotAllowedError%3A+the+sign-in+request+was+not+allowed"
    )


def test_redirect_flow_errors_carry_no_attacker_text(client: JarlessClient) -> None:
    # Issue 15, item 13: a forged state's origin was shown to the user in ?error=.
    started = start(client)
    forged = encode_state(
        {
            "nonce": unquote(started.nonce_cookie),
            "env": "development",
            "origin": "https://Your-session-expired.Sign-in-again-at-evil.example@x/",
            "redirectUrl": "http://localhost:3000/",
            "flow": "redirect",
        }
    )
    response = client.get(
        FRAME, params={"code": VALID_CODE, "state": forged}, headers=started.cookie_header
    )
    assert response.status_code == 302
    assert dict(parse_qsl(urlsplit(response.headers["location"]).query)) == {
        "error": "NotAllowedError: the sign-in request was not allowed"
    }


# -- response_mode=form_post -----------------------------------------------------------


def test_post_state_only_in_body_is_not_read(client: JarlessClient) -> None:
    # Backstage reads state and env from the query only, even for POST.
    started = start(client)
    response = client.post(
        FRAME, data={"code": VALID_CODE, "state": started.state}, headers=started.cookie_header
    )
    assert_json_error(response, 400, "InputError", "Must specify 'env' query to select environment")


async def _form_post_flow(timeout: float) -> httpx2.Response:
    stub = StubProvider()
    app = build_app(clock=FakeClock(), stub=stub, stub_persist=StubProvider(persist_scopes=True))
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url=BACKEND_BASE_URL) as c:
        started = await c.get("/api/auth/stub/start", params={"env": "development"})
        state = dict(parse_qsl(urlsplit(started.headers["location"]).query))["state"]
        nonce = [c for c in set_cookies(started) if c.name == "stub-nonce" and c.value][0].value
        return await asyncio.wait_for(
            c.post(
                FRAME,
                params={"state": state},
                data={"code": VALID_CODE},
                headers={"Cookie": f"stub-nonce={nonce}"},
            ),
            timeout,
        )


async def test_form_post_callback() -> None:
    response = await _form_post_flow(timeout=3.0)
    message, _ = page(response)
    assert message["response"]["backstageIdentity"]["identity"] == IDENTITY
