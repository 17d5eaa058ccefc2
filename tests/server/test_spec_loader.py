"""app.server.spec_loader: the spec documents exactly as connexion would load them from file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from connexion.spec import Specification

from app.providers.registry import REGISTRY
from app.server.application import (
    PROVIDER_DOCUMENT,
    SERVICE_DOCUMENTS,
    SPEC_DIR,
    provider_document_arguments,
)
from app.server.spec_loader import SpecError, load_spec
from tests.fakes.app_factory import build_app, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubProvider


def _provider_arguments(provider: str) -> dict[str, Any]:
    return provider_document_arguments(provider, REGISTRY[provider])


# Every document _add_apis can mount: one per registered provider, then the fixed ones.
# (LeanAsyncApp.add_api leaves out connexion's OpenAPI schema validation: it is here.)
CASES: list[tuple[str, dict[str, Any] | None]] = [
    *((PROVIDER_DOCUMENT, _provider_arguments(provider)) for provider in sorted(REGISTRY)),
    *((name, None) for name, _ in SERVICE_DOCUMENTS),
]
IDS = [f"{name}-{(args or {}).get('provider', '')}" for name, args in CASES]


@pytest.mark.parametrize(("name", "arguments"), CASES, ids=IDS)
def test_same_document_as_connexion_loads_from_file(
    name: str, arguments: dict[str, Any] | None
) -> None:
    path = SPEC_DIR / name
    ours = load_spec(path, arguments)
    # connexion's own loader (Jinja, then yaml.safe_load) is the reference.
    assert ours == Specification._load_spec_from_file(arguments, path)
    # And the Specification connexion builds from it (defaults, $ref resolution) too.
    from_file = Specification.load(path, arguments=arguments)
    from_dict = Specification.load(load_spec(path, arguments))
    assert from_dict.raw == from_file.raw
    assert from_dict.spec == from_file.spec


def test_every_call_returns_a_fresh_document() -> None:
    # connexion changes the dict it is given (defaults): nothing may be shared.
    arguments = _provider_arguments("guest")
    first = load_spec(SPEC_DIR / "openapi.yaml", arguments)
    first["paths"].clear()
    assert load_spec(SPEC_DIR / "openapi.yaml", arguments)["paths"]


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
    spec.write_text("- {{ value }}\n")
    with pytest.raises(SpecError, match="not an OpenAPI document"):
        load_spec(spec, {"value": 1})


def test_the_mounted_documents_and_swagger_ui_are_served() -> None:
    app = build_app(
        clock=FakeClock(),
        stub=StubProvider(),
        stub_persist=StubProvider(persist_scopes=True, required_scopes=("openid",)),
    )
    with make_client(app) as client:
        for base, title in (
            ("/api/auth/guest", "Auth API: guest"),
            ("/api/auth/stub", "Auth API: stub"),
            ("/api/auth", None),
            ("/.backstage/health/v1", None),
        ):
            document = client.get(f"{base}/openapi.json")
            assert document.status_code == 200, base
            assert document.json()["servers"] == [{"url": base}]
            if title is not None:
                assert document.json()["info"]["title"] == title
            ui = client.get(f"{base}/ui/")
            assert ui.status_code == 200, base
            assert "swagger-ui" in ui.text
