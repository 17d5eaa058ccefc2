"""The combined document (app.server.spec_combined) and its URL, /api/auth/openapi.json."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from app.server.spec_combined import CombineError, MountedDocument, combined_document
from tests.fakes.app_factory import build_app, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubProvider

ERROR = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}


def _document(title: str, cookie: str, paths: list[str]) -> dict[str, Any]:
    operation = {
        "operationId": "op",
        "parameters": [{"$ref": "#/components/parameters/cookie"}],
        "responses": {
            "200": {"$ref": "#/components/responses/Ok"},
            "400": {"$ref": "#/components/responses/Error"},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1"},
        "paths": {path: {"get": operation} for path in paths},
        "components": {
            "parameters": {
                "cookie": {"name": cookie, "in": "cookie", "schema": {"type": "string"}}
            },
            "responses": {
                "Error": ERROR,
                # Refers to the cookie: it differs wherever the cookie does.
                "Ok": {
                    "description": "ok",
                    "headers": {"X": {"$ref": "#/components/headers/X"}},
                },
            },
            "headers": {"X": {"schema": {"type": "string"}, "description": "{cookie}"}},
        },
    }


def _combine(*mounted: MountedDocument) -> dict[str, Any]:
    return combined_document(mounted, title="all", description="every document")


def test_paths_tags_and_operation_ids_are_the_mounted_ones() -> None:
    combined = _combine(
        MountedDocument("a", "/api/auth/a", _document("A", "a-nonce", ["/start"])),
        MountedDocument("ops", "", _document("Ops", "a-nonce", ["/healthz"])),
    )
    validate(combined)
    assert sorted(combined["paths"]) == ["/api/auth/a/start", "/healthz"]
    operation = combined["paths"]["/api/auth/a/start"]["get"]
    assert operation["operationId"] == "a_op"
    assert operation["tags"] == ["a"]
    assert combined["tags"] == [
        {"name": "a", "description": "A"},
        {"name": "ops", "description": "Ops"},
    ]
    # Equal everywhere: kept once, under its own name.
    assert sorted(combined["components"]["parameters"]) == ["cookie"]


def test_a_component_that_differs_is_kept_per_document_with_its_references() -> None:
    a = _document("A", "a-nonce", ["/start"])
    a["components"]["headers"]["X"]["description"] = "a"
    combined = _combine(
        MountedDocument("a", "/api/auth/a", a),
        MountedDocument("b", "/api/auth/b", _document("B", "b-nonce", ["/start"])),
    )
    validate(combined)
    components = combined["components"]
    assert sorted(components["parameters"]) == ["a_cookie", "b_cookie"]
    assert components["parameters"]["b_cookie"]["name"] == "b-nonce"
    # Ok refers to the header that differs: one copy each; Error is shared.
    assert sorted(components["responses"]) == ["Error", "a_Ok", "b_Ok"]
    assert components["responses"]["b_Ok"]["headers"]["X"] == {"$ref": "#/components/headers/b_X"}
    b = combined["paths"]["/api/auth/b/start"]["get"]
    assert b["parameters"] == [{"$ref": "#/components/parameters/b_cookie"}]
    assert b["responses"]["400"] == {"$ref": "#/components/responses/Error"}
    assert b["responses"]["200"] == {"$ref": "#/components/responses/b_Ok"}


def test_a_path_in_two_documents_is_refused() -> None:
    with pytest.raises(CombineError, match="/x/start"):
        _combine(
            MountedDocument("a", "/x", _document("A", "n", ["/start"])),
            MountedDocument("b", "/x/", _document("B", "n", ["/start"])),
        )


def test_the_server_serves_every_mounted_api_in_one_valid_document() -> None:
    app = build_app(
        clock=FakeClock(),
        stub=StubProvider(),
        stub_persist=StubProvider(persist_scopes=True, required_scopes=("openid",)),
    )
    with make_client(app) as client:
        answer = client.get("/api/auth/openapi.json")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        combined = answer.json()
        # The same bytes every time (built once).
        assert client.get("/api/auth/openapi.json").content == answer.content
    validate(combined)
    assert [tag["name"] for tag in combined["tags"]] == [
        "stub",
        "stubpersist",
        "guest",
        "actions",
        "identity",
        "authorization",
        "health",
        "operations",
    ]
    paths = combined["paths"]
    for path in (
        "/api/auth/stub/start",
        "/api/auth/stub/logout",
        "/api/auth/guest/refresh",
        "/api/auth/.well-known/jwks.json",
        "/api/auth/.backstage/actions/v1/actions",
        "/api/auth/.backstage/actions/v1/actions/{actionId}/invoke",
        "/.well-known/oauth-authorization-server/api/auth",
        "/.backstage/health/v1/liveness",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert "/api/auth/guest/logout" not in paths
    assert "/docs" not in paths  # pages are for people
    refresh = paths["/api/auth/stub/refresh"]["post"]
    assert refresh["operationId"] == "stub_refresh_post"
    assert {"$ref": "#/components/parameters/stub_refreshTokenCookie"} in refresh["parameters"]
    cookie = combined["components"]["parameters"]["stub_refreshTokenCookie"]
    assert cookie["name"] == "stub-refresh-token"
