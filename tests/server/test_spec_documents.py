"""The committed documents are valid OpenAPI, and so is each provider's own document
(app.server.spec_documents), with what differs between providers applied."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from app.oauth.origins import ORIGIN_QUERY_PATTERN
from app.providers.registry import REGISTRY
from app.server.documents import PROVIDER_DOCUMENT, SPEC_DIR, provider_spec
from app.server.spec_documents import provider_document
from app.server.spec_loader import load_spec, spec_template

DOCUMENTS = sorted(path.name for path in SPEC_DIR.glob("*.yaml"))
OAUTH = sorted(p for p, d in REGISTRY.items() if d.kind == "oauth")
PROXY = sorted(p for p, d in REGISTRY.items() if d.kind == "proxy")
METHODS = {"get", "post", "put", "delete", "patch"}


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def _parameters(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        out[parameter["name"]] = parameter
    return out


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_committed_document_is_valid_openapi(name: str) -> None:
    validate(load_spec(SPEC_DIR / name))


@pytest.mark.parametrize("provider", sorted(REGISTRY))
def test_every_provider_document_is_valid_openapi(provider: str) -> None:
    document = provider_spec(provider, REGISTRY[provider])
    validate(document)
    text = json.dumps(document)
    assert "{provider}" not in text
    assert '"x-proxy":' not in text
    assert document["servers"] == [{"url": f"/api/auth/{provider}"}]
    assert document["info"]["title"] == f"Auth API: {provider}"
    # Every operation has its handler.
    module = importlib.import_module(f"app.handlers.{REGISTRY[provider].kind}")
    for operation in _operations(document).values():
        assert callable(getattr(module, operation["operationId"]))


@pytest.mark.parametrize("provider", OAUTH)
def test_an_oauth_provider_has_the_whole_api_with_its_cookie_names(provider: str) -> None:
    document = provider_spec(provider, REGISTRY[provider])
    operations = _operations(document)
    assert sorted(operations) == [
        "GET /frame/handler",
        "GET /handler/frame",
        "GET /refresh",
        "GET /start",
        "POST /handler/frame",
        "POST /logout",
        "POST /refresh",
    ]
    frame = _parameters(document, operations["GET /handler/frame"])
    assert frame[f"{provider}-nonce"]["in"] == "cookie"
    assert frame["state"]["required"] is True
    refresh = _parameters(document, operations["POST /refresh"])
    assert {f"{provider}-refresh-token", f"{provider}-granted-scope", "X-Requested-With"} <= set(
        refresh
    )
    assert refresh["env"]["required"] is True
    start = _parameters(document, operations["GET /start"])
    assert start["origin"]["schema"]["pattern"] == ORIGIN_QUERY_PATTERN
    extra = set(start) - {"env", "scope", "origin", "flow", "redirectUrl"}
    assert extra == {f"{provider}-granted-scope", *REGISTRY[provider].start_params}


def test_auth0_lists_its_pass_through_start_parameters() -> None:
    start = _operations(provider_spec("auth0", REGISTRY["auth0"]))["GET /start"]
    names = [p.get("name") for p in start["parameters"]]
    assert names[-4:] == ["organization", "invitation", "screen_hint", "login_hint"]


@pytest.mark.parametrize("provider", PROXY)
def test_a_proxy_provider_signs_in_with_refresh_alone(provider: str) -> None:
    document = provider_spec(provider, REGISTRY[provider])
    operations = _operations(document)
    assert "/logout" not in document["paths"]
    for name in ("GET /start", "GET /handler/frame", "POST /handler/frame", "GET /frame/handler"):
        assert list(operations[name]["responses"]) == ["501"], name
        assert "parameters" not in operations[name] or operations[name]["parameters"] == []
        assert "requestBody" not in operations[name]
    for name in ("GET /refresh", "POST /refresh"):
        parameters = _parameters(document, operations[name])
        assert sorted(parameters) == ["env", "optional", "scope"]
        assert parameters["env"]["required"] is False
        assert operations[name]["description"].startswith("Signs in from what the request")
    # Nothing left that only the OAuth operations used.
    assert sorted(document["components"]["parameters"]) == ["env"]


def test_the_parsed_document_is_left_as_it_was() -> None:
    template = spec_template(SPEC_DIR / PROVIDER_DOCUMENT)
    before = json.dumps(template)
    for provider in ("guest", "github", "auth0"):
        document = provider_spec(provider, REGISTRY[provider])
        document["paths"].clear()
    assert json.dumps(template) == before


def test_a_marker_lays_its_mapping_over_the_object_and_null_removes_a_key() -> None:
    template = {
        "servers": [{"url": "/api/auth/{provider}"}],
        "paths": {
            "/a": {
                "get": {
                    "summary": "for {provider}",
                    "requestBody": {"content": {}},
                    "x-proxy": {"summary": "proxy {provider}", "requestBody": None},
                },
                "post": {"summary": "gone", "x-proxy": "omit"},
            },
            "/b": {"post": {"x-proxy": "omit"}},
        },
    }
    assert provider_document(template, "p", kind="proxy")["paths"] == {
        "/a": {"get": {"summary": "proxy p"}}
    }
    assert provider_document(template, "o", kind="oauth")["paths"] == {
        "/a": {
            "get": {"summary": "for o", "requestBody": {"content": {}}},
            "post": {"summary": "gone"},
        },
        "/b": {"post": {}},
    }
