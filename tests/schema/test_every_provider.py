"""schemathesis over the rendered spec of every OAuth provider in the registry (auth0's
extra /start parameters included), each configured against the fake identity provider,
with every check. The stub providers' suite (test_schemathesis.py) goes deeper; this one
proves each real provider's spec and handlers agree."""

from __future__ import annotations

from typing import Any

import httpx2
import schemathesis
from hypothesis import HealthCheck, settings

from app.config.settings import read_settings
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.app_factory import BACKEND_BASE_URL
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP
from tests.providers.test_conformance import CONFIG_BUILDERS

from .test_schemathesis import run_case

OAUTH = sorted(pid for pid, d in REGISTRY.items() if d.kind == "oauth")
FAKE = FakeIdP()


def _app() -> Any:
    config = {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {"baseUrl": BACKEND_BASE_URL},
        "auth": {
            "session": {"secret": "schema-secret"},
            "providers": {pid: {"development": CONFIG_BUILDERS[pid](FAKE)} for pid in OAUTH},
        },
    }
    return create_app(
        read_settings(config),
        development=True,
        deps=Dependencies(clock=FakeClock(), transport=httpx2.MockTransport(FAKE)),
        validate_responses=True,
    )


APP = _app()
SCHEMAS = {
    pid: schemathesis.openapi.from_asgi(f"/api/auth/{pid}/openapi.json", APP) for pid in OAUTH
}
SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def test_every_oauth_provider_is_covered() -> None:
    # Every OAuth provider the registry knows has a fake config here, and the app mounted
    # its spec with all four operations (a provider missing either would be skipped).
    assert set(OAUTH) <= set(CONFIG_BUILDERS)
    for pid, schema in SCHEMAS.items():
        paths = set(schema.raw_schema["paths"])
        assert {"/start", "/handler/frame", "/refresh", "/logout"} <= paths, pid
    start = SCHEMAS["auth0"]["/start"]["GET"]
    assert {"organization", "invitation", "screen_hint", "login_hint"} <= {
        p.name for p in start.query
    }
    assert "audience" in {p.name for p in SCHEMAS["pinniped"]["/start"]["GET"].query}


def _test_for(provider: str) -> Any:
    @SCHEMAS[provider].parametrize()
    @SETTINGS
    def test(case: Any) -> None:
        run_case(case, provider=provider, force_xrw=True)

    return test


for _provider in OAUTH:
    globals()[f"test_{_provider}"] = _test_for(_provider)
