"""app.server.spec_loader: the spec documents exactly as connexion would load them from file."""

from __future__ import annotations

from pathlib import Path

import pytest
from connexion.spec import Specification

from app.server.documents import SPEC_DIR
from app.server.spec_loader import SpecError, load_spec, spec_template
from tests.fakes.app_factory import build_app, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubProvider

DOCUMENTS = sorted(path.name for path in SPEC_DIR.glob("*.yaml"))


def test_every_document_is_here() -> None:
    assert {"openapi.yaml", "identity.yaml", "health.yaml", "operations.yaml"} <= set(DOCUMENTS)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_same_document_as_connexion_loads_from_file(name: str) -> None:
    path = SPEC_DIR / name
    ours = load_spec(path)
    # connexion's own loader (Jinja, then yaml.safe_load) is the reference: our files
    # have nothing for Jinja to do.
    assert ours == Specification._load_spec_from_file(None, path)
    # And the Specification connexion builds from it (defaults, $ref resolution) too.
    from_file = Specification.load(path)
    from_dict = Specification.load(load_spec(path))
    assert from_dict.raw == from_file.raw
    assert from_dict.spec == from_file.spec


def test_every_call_returns_a_fresh_document() -> None:
    # connexion changes the dict it is given (defaults): nothing may be shared, not even
    # the lists that YAML aliases share within one parse.
    path = SPEC_DIR / "openapi.yaml"
    first = load_spec(path)
    first["paths"]["/handler/frame"]["get"]["parameters"].clear()
    first["paths"].clear()
    again = load_spec(path)
    assert again == spec_template(path)
    assert again["paths"]["/handler/frame"]["post"]["parameters"]


def test_a_reference_to_another_file_is_refused(tmp_path: Path) -> None:
    # A dict has no base URI: connexion would resolve it against the working directory.
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n"
        "paths:\n  /x:\n    get:\n      responses:\n"
        "        '200': {$ref: 'other.yaml#/components/responses/ok'}\n"
    )
    with pytest.raises(SpecError, match="other.yaml"):
        load_spec(spec)


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("- 1\n")
    with pytest.raises(SpecError, match="not an OpenAPI document"):
        load_spec(spec)


def test_the_mounted_documents_and_swagger_ui_are_served() -> None:
    app = build_app(
        clock=FakeClock(),
        stub=StubProvider(),
        stub_persist=StubProvider(persist_scopes=True, required_scopes=("openid",)),
    )
    with make_client(app) as client:
        for base, folder, title in (
            ("/api/auth/guest", "", "Auth API: guest"),
            ("/api/auth/stub", "", "Auth API: stub"),
            ("/api/auth", "/identity", "Auth API: identity"),
            ("/.backstage/health/v1", "", "Health"),
            ("", "/operations", "Operations"),
            ("", "/pages", "Pages"),
        ):
            document = client.get(f"{base}{folder}/openapi.json")
            assert document.status_code == 200, base
            assert document.json()["servers"] == [{"url": base}]
            assert document.json()["info"]["title"] == title
            ui = client.get(f"{base}{folder}/ui/")
            assert ui.status_code == 200, base
            assert f"{base}{folder}/openapi.json" in ui.text
