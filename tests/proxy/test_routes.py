"""The routes a proxy provider does not serve: 501 for the OAuth flow, 404/405 otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.fakes.proxy_keys import ProxyKeyServer
from tests.proxy.helpers import PROXY_IDS, build, client


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    with client(build(ProxyKeyServer())) as c:
        yield c


@pytest.mark.parametrize("provider", PROXY_IDS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/start"),
        ("GET", "/start?env=development&scope=openid&origin=http://localhost:3000"),
        ("GET", "/handler/frame"),
        ("POST", "/handler/frame"),
        ("GET", "/frame/handler"),
    ],
)
def test_the_oauth_flow_is_501(http: TestClient, provider: str, method: str, path: str) -> None:
    response = http.request(method, f"/api/auth/{provider}{path}")
    assert response.status_code == 501
    body = response.json()
    assert body["error"] == {"name": "NotImplementedError", "message": "Not implemented"}
    assert body["request"]["method"] == method
    assert body["request"]["url"] == f"/{provider}{path}"
    assert body["response"] == {"statusCode": 501}


@pytest.mark.parametrize("provider", PROXY_IDS)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_there_is_no_logout(http: TestClient, provider: str, method: str) -> None:
    response = http.request(
        method, f"/api/auth/{provider}/logout", headers={"X-Requested-With": "XMLHttpRequest"}
    )
    assert response.status_code == 404
    assert response.json()["error"] == {
        "name": "NotFoundError",
        "message": f"Unknown auth provider '{provider}'",
    }


@pytest.mark.parametrize("provider", PROXY_IDS)
@pytest.mark.parametrize(("method", "path"), [("DELETE", "/refresh"), ("PUT", "/start")])
def test_other_methods_are_405(http: TestClient, provider: str, method: str, path: str) -> None:
    response = http.request(method, f"/api/auth/{provider}{path}")
    assert response.status_code == 405
    assert response.json()["error"]["name"] == "MethodNotAllowedError"


@pytest.mark.parametrize("provider", PROXY_IDS)
def test_the_rendered_spec_is_served_without_oauth_only_parts(
    http: TestClient, provider: str
) -> None:
    spec = http.get(f"/api/auth/{provider}/openapi.json").json()
    assert set(spec["paths"]) == {"/start", "/handler/frame", "/frame/handler", "/refresh"}
    refresh_params = {p["name"] for p in spec["paths"]["/refresh"]["get"]["parameters"]}
    assert "X-Requested-With" not in refresh_params


@pytest.mark.parametrize("provider", ["awsalb", "oauth2Proxy"])
def test_the_start_query_is_not_validated_for_proxy_providers(
    http: TestClient, provider: str
) -> None:
    response = http.get(f"/api/auth/{provider}/start?origin=not-a-url")
    assert response.status_code == 501, response.text
