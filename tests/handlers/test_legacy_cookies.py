"""Backstage's raw refresh cookie across a switch (auth.session.acceptLegacyRefreshCookiesUntil):
accepted once within the window and answered with a sealed cookie; refused otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.fakes.app_factory import JarlessClient, build_app, config, make_client
from tests.fakes.clock import START, FakeClock
from tests.fakes.stub_provider import StubProvider

from .helpers import XRW, set_cookies

UNTIL = "2024-01-01T00:00:00Z"  # FakeClock starts in November 2023.
RAW = "idp-refresh-token-from-backstage"


@pytest.fixture
def setup() -> Iterator[tuple[JarlessClient, FakeClock, StubProvider]]:
    clock = FakeClock()
    stub = StubProvider()
    raw = config(session={"secret": "s3cret", "acceptLegacyRefreshCookiesUntil": UNTIL})
    app = build_app(clock=clock, stub=stub, stub_persist=StubProvider(), raw_config=raw)
    with make_client(app) as client:
        yield client, clock, stub


def _refresh(client: JarlessClient, cookie: str) -> httpx2.Response:
    return client.get(
        "/api/auth/stub/refresh",
        params={"env": "development"},
        headers={**XRW, "Cookie": f"stub-refresh-token={cookie}"},
    )


def test_a_backstage_cookie_is_accepted_once_and_sealed(
    setup: tuple[JarlessClient, FakeClock, StubProvider],
) -> None:
    client, _, stub = setup
    response = _refresh(client, RAW)
    assert response.status_code == 200, response.text
    assert [r.refresh_token for r in stub.instances["development"].refreshes] == [RAW]
    (sealed,) = [
        c.value for c in set_cookies(response) if c.name == "stub-refresh-token" and c.value
    ]
    assert len(sealed.split(".")) == 5 and RAW not in sealed
    # The sealed cookie is the session from now on; the raw one is spent.
    assert _refresh(client, sealed).status_code == 200
    assert _refresh(client, RAW).status_code == 401


def test_after_the_window_a_backstage_cookie_means_signing_in(
    setup: tuple[JarlessClient, FakeClock, StubProvider],
) -> None:
    client, clock, stub = setup
    clock.current = START + 60 * 86400
    assert _refresh(client, RAW).status_code == 401
    assert stub.instances["development"].refreshes == []


def test_without_the_setting_a_backstage_cookie_is_refused(client: JarlessClient) -> None:
    assert _refresh(client, RAW).status_code == 401
