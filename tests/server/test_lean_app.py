"""LeanAsyncApp: connexion's per-request set-up done once, with the same behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from connexion.decorators.main import BaseDecorator
from connexion.exceptions import InvalidSpecification
from connexion.spec import Specification
from jsonschema import Draft4Validator  # type: ignore[import-untyped]
from starlette.testclient import TestClient

from app.server import lean_app
from tests.fakes.app_factory import BACKEND_BASE_URL, registry_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(registry_app(), base_url=BACKEND_BASE_URL) as c:
        yield c


def test_handlers_are_decorated_when_mounted_not_per_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decorations: list[Any] = []
    original = BaseDecorator.decorate

    def counting(self: BaseDecorator, function: Any) -> Any:
        decorations.append(function)
        return original(self, function)

    monkeypatch.setattr(BaseDecorator, "decorate", counting)
    for _ in range(3):
        assert client.get("/api/auth/guest/refresh").status_code == 200
        assert client.get("/.backstage/health/v1/liveness").status_code == 200
    assert decorations == []


def test_parameter_validators_are_built_once_per_parameter(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []

    def counting(schema: Any, **kwargs: Any) -> Any:
        built.append(schema)
        return Draft4Validator(schema, **kwargs)

    monkeypatch.setattr(lean_app, "Draft4Validator", counting)
    lean_app._VALIDATORS.clear()
    params = {"env": "development", "flow": "popup", "origin": "not a URL"}
    answers = [client.get("/api/auth/oauth2/start", params=params) for _ in range(3)]
    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == "App origin is invalid, failed to parse"
    # Parameters were validated on each of the 3 requests, each by a validator built once.
    assert len(built) >= 2
    assert len(built) == len({id(schema) for schema in built})


def test_the_swagger_ui_and_spec_documents_are_still_served(client: TestClient) -> None:
    assert client.get("/api/auth/guest/openapi.json").json()["paths"]
    assert "openapi" in client.get("/api/auth/guest/openapi.yaml").text
    redirect = client.get("/api/auth/guest/ui", follow_redirects=False)
    assert redirect.status_code in (301, 302, 307, 308)
    assert client.get("/api/auth/guest/ui/").status_code == 200
    assert client.get("/docs").status_code == 200


def _broken_document() -> dict[str, Any]:
    # "paths" entries must be objects: the OpenAPI 3.0 schema refuses a string.
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/x": "no"}}


def test_add_api_leaves_the_document_check_to_the_tests_and_restores_it() -> None:
    app = lean_app.LeanAsyncApp(__name__)
    # Not checked against the OpenAPI schema here (connexion would refuse it at once).
    app.add_api(_broken_document(), base_path="/a")
    with pytest.raises(ValueError, match="three"):
        # A failure inside add_api (connexion parsing the version), before the check.
        app.add_api({**_broken_document(), "openapi": "three"}, base_path="/b")
    # After add_api, however it ended, connexion checks documents again for everyone else.
    with pytest.raises(InvalidSpecification, match="is not of type .object."):
        Specification.load(_broken_document())


def test_body_definitions_are_built_once_per_content_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connexion.operations import OpenAPIOperation

    from tests.authz.conftest import CONFIG, build
    from tests.fakes.app_factory import make_client
    from tests.fakes.clock import FakeClock

    built: list[Any] = []
    original = OpenAPIOperation.body_definition

    def counting(self: OpenAPIOperation, content_type: str | None = None) -> Any:
        built.append(content_type)
        return original(self, content_type)

    monkeypatch.setattr(OpenAPIOperation, "body_definition", counting)
    with make_client(build(CONFIG, FakeClock())) as client:
        for _ in range(5):
            answer = client.post("/api/auth/v1/revoke", data={"token": "x", "client_id": "cli"})
            assert answer.status_code == 200
            answer = client.post("/api/auth/v1/revoke", json={"token": "x", "client_id": "cli"})
            assert answer.status_code == 200
        bad = client.post("/api/auth/v1/revoke", json={"token": 1, "client_id": "cli"})
    assert bad.status_code == 400
    # connexion asked about nine times per request; each definition is built once for
    # each of the operations' validation and handler layers.
    assert 0 < len(built) <= 12


def test_a_form_body_is_parsed_and_its_schema_compiled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from starlette.formparsers import FormParser

    from tests.authz.conftest import CONFIG, build, code_grant
    from tests.fakes.app_factory import make_client
    from tests.fakes.clock import FakeClock

    parses: list[Any] = []
    original_parse = FormParser.parse

    async def counting_parse(self: FormParser) -> Any:
        parses.append(self)
        return await original_parse(self)

    compiled: list[Any] = []
    original_make = lean_app._form_validator

    def counting_make(schema: dict[str, Any]) -> Any:
        compiled.append(schema)
        return original_make(schema)

    monkeypatch.setattr(FormParser, "parse", counting_parse)
    monkeypatch.setattr(lean_app, "_form_validator", counting_make)
    lean_app._VALIDATORS.clear()
    with make_client(build(CONFIG, FakeClock())) as client:
        grant = code_grant(client)
        parses.clear()
        for _ in range(3):
            # The handler read the fields connexion validated: the grant rotates.
            answer = client.post(
                "/api/auth/v1/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": grant["refresh_token"],
                    "client_id": "cli",
                },
            )
            assert answer.status_code == 200, answer.text
            grant = answer.json()
        assert len(parses) == 3
        # Repeated fields, resolved by connexion once.
        refused = client.post(
            "/api/auth/v1/token",
            data={"grant_type": "refresh_token", "refresh_token": ["x", "t"], "client_id": "cli"},
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error_description"] == "Invalid refresh token format"
        assert len(parses) == 4
    assert len({id(schema) for schema in compiled}) == len(compiled) <= 2
