"""schemathesis over the authorization server's operations, every check: generated and
hostile inputs never get a 5xx or an undocumented answer. The app runs under a
TestClient (its lifespan creates the tables)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.server.documents import SPEC_DIR
from app.server.spec_loader import load_spec
from tests.authz.conftest import call
from tests.fakes.app_factory import JarlessClient, make_client
from tests.fakes.clock import FakeClock

from .conftest import build, config

SCHEMA = schemathesis.openapi.from_dict(load_spec(SPEC_DIR / "authorization.yaml"))
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@pytest.fixture(scope="module")
def client() -> Iterator[JarlessClient]:
    with make_client(build(config(), FakeClock())) as test_client:
        yield test_client


@SCHEMA.parametrize()
@SETTINGS
def test_authorization_operations(case: Any, client: JarlessClient) -> None:
    call(case, client, "/api/auth")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/v1/authorize", {"params": {"client_id": "ü" * 5000, "redirect_uri": "x"}}),
        ("GET", "/v1/sessions/" + "é" * 3000, {}),
        ("POST", "/v1/token", {"content": b"\xff\xfe", "headers": {"content-type": "text/plain"}}),
        ("POST", "/v1/token", {"content": b"{", "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/token", {"json": {"grant_type": ["a"]}}),
        (
            "POST",
            "/v1/token",
            {"data": {"grant_type": "refresh_token", "refresh_token": "a\x00.b"}},
        ),
        (
            "POST",
            "/v1/token",
            {"data": {"grant_type": "refresh_token", "refresh_token": "ü" * 9999 + ".x"}},
        ),
        ("POST", "/v1/revoke", {"headers": {"authorization": "Basic %%%"}, "data": {"token": "t"}}),
        ("POST", "/v1/sessions/x/approve", {"headers": {"authorization": "Bearer " + "a" * 20000}}),
    ],
)
def test_hostile_inputs_get_no_5xx(
    client: JarlessClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = client.request(method, f"/api/auth{path}", **kwargs)
    assert 400 <= response.status_code < 500, response.text


def test_a_json_body_that_is_not_utf8_is_a_400(client: JarlessClient) -> None:
    response = client.post(
        "/api/auth/v1/token", content=b"\xf2{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Request body is not valid UTF-8"
