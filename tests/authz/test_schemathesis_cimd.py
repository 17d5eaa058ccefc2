"""schemathesis over the operations of part 2 (the authorization server with Client ID
Metadata Documents on, the actions registry, RFC 8414 metadata), and hostile inputs:
never a 5xx or an undocumented answer. Names resolve to nothing (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.server.documents import SPEC_DIR
from app.server.spec_loader import load_spec
from tests.authz.conftest import SERVICE_TOKEN, call, config
from tests.authz.test_cimd_routes import FakeResolver, build
from tests.fakes.app_factory import JarlessClient, make_client
from tests.fakes.clock import FakeClock

AUTHORIZATION = schemathesis.openapi.from_dict(load_spec(SPEC_DIR / "authorization.yaml"))
ACTIONS = schemathesis.openapi.from_dict(load_spec(SPEC_DIR / "actions.yaml"))
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@pytest.fixture(scope="module")
def client() -> Iterator[JarlessClient]:
    raw = config(clientIdMetadataDocuments={"enabled": True})
    with make_client(build(raw, FakeClock(), FakeResolver({}))) as test_client:
        yield test_client


@AUTHORIZATION.parametrize()
@SETTINGS
def test_authorization_operations_with_documents(case: Any, client: JarlessClient) -> None:
    call(case, client, "/api/auth")


@ACTIONS.parametrize()
@SETTINGS
def test_actions_operations(case: Any, client: JarlessClient) -> None:
    call(case, client, "/api/auth/.backstage/actions")


@pytest.mark.parametrize(
    "client_id",
    [
        "https://claude.ai/" + "a" * 5000,
        "https://claude.ai/%00",
        "https://claude.ai/\u00fc\u00fc",
        "https://[::1/x",
        "https://claude.ai:99999/x",
        "https://claude.ai/x/%2e%2e/y",
        "https://" + "a." * 200 + "claude.ai/x",
        "https://xn--/x",
        "http://127.0.0.1:0/x",
    ],
)
def test_hostile_client_ids_get_no_5xx(client: JarlessClient, client_id: str) -> None:
    response = client.get(
        "/api/auth/v1/authorize",
        params={
            "client_id": client_id,
            "redirect_uri": "http://127.0.0.1/cb",
            "response_type": "code",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 400, response.text
    revoke = client.post("/api/auth/v1/revoke", data={"token": "t", "client_id": client_id})
    assert revoke.status_code in (200, 401), revoke.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        (
            "POST",
            "/v1/actions/auth:who-am-i/invoke",
            {"content": b"{", "headers": {"content-type": "application/json"}},
        ),
        ("POST", "/v1/actions/auth:who-am-i/invoke", {"json": None}),
        ("POST", "/v2/actions/auth:who-am-i/invoke", {"json": [1, 2]}),
        ("POST", "/v1/actions/" + "é" * 3000 + "/invoke", {"json": {}}),
        ("GET", "/v1/status", {"headers": {"authorization": "Bearer " + "a" * 20000}}),
        ("GET", "/v1/status", {"headers": {"authorization": f"Bearer {SERVICE_TOKEN}x"}}),
    ],
)
def test_hostile_action_inputs_get_no_5xx(
    client: JarlessClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = client.request(method, f"/api/auth/.backstage/actions{path}", **kwargs)
    assert 400 <= response.status_code < 500, response.text
