"""Plugin tokens into our server, beside a real Backstage backend: the real MCP actions
backend lists and invokes who-am-i with its own plugin token on behalf of a user we
signed in (the entity comes from the real catalog); a plugin of another backend
(``tester``, found through discovery) presents forged, expired, wrong-audience and
wrong-``obo`` tokens and gets Backstage's 401s; a flood of made-up subjects does not
turn into a key fetch per subject (counted at the real backend); hostile input never
gets a 5xx."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from app.authz.plugin_callers import NEW_CLIENT_BURST
from tests.backstage_backend.plugin import BROKEN, PEER, PLUGIN_TYPE, PeerPlugin
from tests.backstage_backend.support import ALICE, TEAM, Split, guest_token

pytestmark = pytest.mark.integration

STATUS = "/.backstage/actions/v1/status"
LIST = "/.backstage/actions/v1/actions"
INVOKE = "/.backstage/actions/v1/actions/auth:who-am-i/invoke"
REVOKE = "/v1/offline-sessions/revoke"


def _mcp(split: Split, token: str | None, method: str, params: dict[str, Any]) -> httpx2.Response:
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(
        f"{split.main.base_url}/api/mcp-actions/v1",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers=headers,
        timeout=30,
    )


def _result(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
    message: dict[str, Any] = json.loads(data[0])
    assert "result" in message, message
    result: dict[str, Any] = message["result"]
    return result


def test_the_mcp_actions_backend_calls_who_am_i_with_its_plugin_token(split: Split) -> None:
    token = guest_token(split)
    tools = _result(_mcp(split, token, "tools/list", {}))["tools"]
    assert [tool["name"] for tool in tools] == ["auth.who-am-i"]
    called = _result(_mcp(split, token, "tools/call", {"name": "auth.who-am-i", "arguments": {}}))
    assert not called.get("isError"), called
    output = called["structuredContent"]
    assert output["userInfo"] == {"userEntityRef": ALICE, "ownershipEntityRefs": [ALICE, TEAM]}
    entity = output["entity"]
    # The catalog's own entity: stitched relations and the location it came from.
    assert entity["metadata"]["uid"]
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-location"].startswith("file:")
    assert {"type": "memberOf", "targetRef": TEAM} in entity["relations"]
    # It reached us with a plugin token of mcp-actions, whose keys we fetched from it.
    assert "POST /api/auth/.backstage/actions/v1/actions/auth%3Awho-am-i/invoke" in (
        split.ours.output
    )
    assert split.main.requests_to("/api/mcp-actions/.backstage/auth/v1/jwks.json")


def test_the_mcp_endpoint_wants_a_token(split: Split) -> None:
    response = _mcp(split, None, "tools/list", {})
    assert response.status_code == 401
    # Backstage 0.2.4 sends no WWW-Authenticate header: clients find the metadata at
    # the well-known path (RFC 9728 section 3) instead.
    assert "www-authenticate" not in response.headers


def _at(split: Split, method: str, path: str, token: str, body: Any = None) -> httpx2.Response:
    return httpx2.request(
        method,
        f"{split.auth_api}{path}",
        headers={b"Authorization": f"Bearer {token}".encode()},
        json=body,
        timeout=30,
    )


def _refused(response: httpx2.Response, message: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == {"name": "AuthenticationError", "message": message}


def test_a_plugin_of_another_backend_is_a_service(split: Split, plugin: PeerPlugin) -> None:
    token = plugin.token()
    assert _at(split, "GET", STATUS, token).json() == {"hasActions": True}
    revoked = _at(split, "POST", REVOKE, token, {"userEntityRef": "user:default/nobody"})
    assert revoked.status_code == 200, revoked.text
    # Its keys were fetched once, through discovery.
    for _ in range(5):
        assert _at(split, "GET", STATUS, plugin.token()).status_code == 200
    assert plugin.requests.count(f"/api/{PEER}/.backstage/auth/v1/jwks.json") == 1


def _limited(user_token: str) -> str:
    """Backstage's limited user token, made from one of our user tokens."""
    header_raw, payload_raw, _ = user_token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_raw + "=="))
    payload = json.loads(base64.urlsafe_b64decode(payload_raw + "=="))

    def segment(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    limited_header = {
        "typ": "vnd.backstage.limited-user",
        "alg": header["alg"],
        "kid": header["kid"],
    }
    claims = {"sub": payload["sub"], "iat": payload["iat"], "exp": payload["exp"]}
    return f"{segment(limited_header)}.{segment(claims)}.{payload['uip']}"


def test_user_info_for_the_main_backends_user_info_service(split: Split) -> None:
    """Backstage's DefaultUserInfoService on the main backend asks discovery's ``auth``
    for ``/v1/userinfo`` with the credentials' token: for a plugin calling on a user's
    behalf, the limited user token (which carries no ``ent``)."""
    limited = _limited(guest_token(split))
    info = httpx2.get(
        f"{split.auth_api}/v1/userinfo",
        headers={"Authorization": f"Bearer {limited}"},
        timeout=30,
    )
    assert info.status_code == 200, info.text
    assert info.json()["claims"] == {"sub": ALICE, "ent": [ALICE, TEAM]}


def test_on_behalf_of_a_user_and_the_refusals(split: Split, plugin: PeerPlugin) -> None:
    user = guest_token(split)
    exp = int(json.loads(base64.urlsafe_b64decode(user.split(".")[1] + "=="))["exp"])
    obo = _limited(user)
    ttl = exp - int(time.time())
    invoked = _at(split, "POST", INVOKE, plugin.token(obo=obo, ttl=ttl - 5), {})
    assert invoked.status_code == 200, invoked.text
    assert invoked.json()["output"]["userInfo"]["userEntityRef"] == ALICE

    other = ECKey.generate_key("P-256", {"kid": "tester-1"})
    forged = jwt.encode(
        {"typ": PLUGIN_TYPE, "alg": "ES256", "kid": "tester-1"},
        {"sub": PEER, "aud": "auth", "iat": int(time.time()), "exp": int(time.time()) + 60},
        other,
    )
    not_ours = jwt.encode(
        {"typ": "vnd.backstage.limited-user", "alg": "ES256", "kid": "tester-1"},
        {"sub": ALICE, "iat": int(time.time()), "exp": exp},
        plugin.key,
    )
    for path, method, body in ((INVOKE, "POST", {}), (LIST, "GET", None), (REVOKE, "POST", {})):
        _refused(_at(split, method, path, forged, body), "Failed plugin token verification")
        _refused(
            _at(split, method, path, plugin.token(ttl=-60), body),
            "Failed plugin token verification",
        )
        _refused(
            _at(split, method, path, plugin.token(aud="catalog"), body),
            "Failed plugin token verification",
        )
        _refused(
            _at(split, method, path, plugin.token(obo=not_ours, ttl=60), body),
            "Failed user token verification",
        )
        # A plugin token that outlives its user token was not made for it.
        _refused(
            _at(split, method, path, plugin.token(obo=obo, ttl=ttl + 600), body),
            "Invalid user token in plugin token obo claim",
        )
        _refused(
            _at(split, method, path, plugin.token(sub="Not A Plugin!"), body),
            "Invalid plugin token: forbidden subject format",
        )


def test_a_plugin_whose_keys_are_garbage_is_refused(split: Split, plugin: PeerPlugin) -> None:
    # Before the flood (file order), which uses up the new key clients of the minute.
    for _ in range(3):
        response = _at(split, "GET", LIST, plugin.token(sub=BROKEN))
        assert response.status_code == 401, response.text
    assert response.json()["error"]["name"] == "AuthenticationError"
    # Fetched once; the failure is remembered.
    assert plugin.requests.count(f"/api/{BROKEN}/.backstage/auth/v1/jwks.json") == 1


def test_a_flood_of_made_up_subjects_is_not_a_fetch_per_subject(
    split: Split, plugin: PeerPlugin
) -> None:
    # Signed by the tester's key: only the subjects are made up.
    subjects = [f"flood-{secrets.token_hex(4)}" for _ in range(40)]
    for sub in subjects:
        response = _at(split, "GET", LIST, plugin.token(sub=sub))
        assert response.status_code == 401, response.text
    fetched = [s for s in subjects if split.main.requests_to(f"/api/{s}/.backstage/auth/v1/")]
    assert 0 < len(fetched) <= NEW_CLIENT_BURST, fetched
    # The proven plugin keeps working through the flood.
    assert _at(split, "GET", STATUS, plugin.token()).status_code == 200


_HOSTILE = [
    "x",
    "a.b.c",
    "..",
    "e30.e30.e30",
    base64.urlsafe_b64encode(json.dumps({"typ": PLUGIN_TYPE}).encode()).decode() + ".bm90.c2ln",
    base64.urlsafe_b64encode(json.dumps({"typ": PLUGIN_TYPE}).encode()).decode().rstrip("=")
    + "."
    + base64.urlsafe_b64encode(b'{"sub": 5, "aud": ["auth"]}').decode().rstrip("=")
    + ".c2ln",
    base64.urlsafe_b64encode(json.dumps({"typ": PLUGIN_TYPE}).encode()).decode().rstrip("=")
    + "."
    + base64.urlsafe_b64encode(b'["not", "an", "object"]').decode().rstrip("=")
    + ".c2ln",
    "\u00e9\u00e9.\u00e9.\u00e9",
    "a" * 20000,
]


def test_no_5xx_under_hostile_tokens(split: Split, plugin: PeerPlugin) -> None:
    tokens = [
        *_HOSTILE,
        plugin.token(sub="x" * 5000),
        plugin.token(obo=12),
        plugin.token(obo=""),
    ]
    for token in tokens:
        for method, path, body in (
            ("GET", LIST, None),
            ("GET", STATUS, None),
            ("POST", INVOKE, {}),
            ("POST", "/.backstage/actions/v2/actions/auth:who-am-i/invoke", {"input": []}),
            ("POST", REVOKE, {"userEntityRef": 5}),
            ("GET", "/v1/userinfo", None),
        ):
            response = _at(split, method, path, token, body)
            assert response.status_code < 500, (token[:80], path, response.text)
