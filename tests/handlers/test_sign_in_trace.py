"""A failed real sign-in logs the resolver steps as one structured event (the steps
``explain-sign-in`` prints); the user still sees Backstage's error; no token is logged."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from tests.fakes.app_factory import BASE_CONFIG, build_app, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubProvider

from .helpers import page, start


def test_a_failed_sign_in_logs_its_steps(caplog: pytest.LogCaptureFixture) -> None:
    config: dict[str, Any] = copy.deepcopy(BASE_CONFIG)
    config["auth"]["providers"]["stub"]["development"]["signIn"] = {
        "resolvers": [{"resolver": "emailLocalPartMatchingUserEntityName"}]
    }
    app = build_app(
        clock=FakeClock(), stub=StubProvider(), stub_persist=StubProvider(), raw_config=config
    )
    with make_client(app) as client, caplog.at_level(logging.INFO):
        started = start(client)
        response = client.get(
            "/api/auth/stub/handler/frame",
            params={"code": "valid-code", "state": started.state},
            headers=started.cookie_header,
        )
    message, _ = page(response)
    assert message["error"]["message"].startswith("Failed to sign-in, unable to resolve user")
    events = [r for r in caplog.records if getattr(r, "event", None) == "sign_in_failed"]
    assert len(events) == 1
    event: Any = events[0]
    assert event.provider == "stub"
    assert event.steps == [
        {"step": "resolver", "resolver": "emailLocalPartMatchingUserEntityName"},
        {"step": "lookup", "query": {"entityRef": "user:default/jane.doe"}, "found": "not found"},
        {
            "step": "stopped",
            "resolver": "emailLocalPartMatchingUserEntityName",
            "why": "not found",
            "message": "User not found",
        },
    ]
    assert "ey" not in repr(event.__dict__.get("steps"))
