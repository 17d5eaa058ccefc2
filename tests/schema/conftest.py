"""The app the schemathesis suite runs against: the real app with the stub providers and
response validation on. Built at import time, because the schemas are loaded from the
running app when the test module is collected (each provider has a document of its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fakes.app_factory import build_app
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubProvider

if TYPE_CHECKING:
    from connexion import AsyncApp


def build_schema_app() -> AsyncApp:
    return build_app(
        clock=FakeClock(),
        stub=StubProvider(),
        stub_persist=StubProvider(persist_scopes=True, required_scopes=("openid",)),
        validate_responses=True,
    )
