"""One deadline per sign-in and per refresh (issue 23 item 7): a refresh makes two calls to
the identity provider (token, then profile), each under the per-call timeout; together they
must still finish within the environment's ``timeout``, and the user gets Backstage's
error when they do not. Measured on a real clock, with generous tolerance."""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.config.settings import read_settings
from app.core.clock import SystemClock
from app.providers.base import AuthenticateInput, AuthResult, RefreshInput
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.app_factory import (
    APP_BASE_URL,
    BACKEND_BASE_URL,
    BASE_CONFIG,
    JarlessClient,
    build_app,
    make_client,
)
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubAuthenticator, StubProvider

from .helpers import XRW, cookie_header, page, sign_in, start
from .test_refresh import refresh_failure

TIMEOUT_SECONDS = 1.0
# Each upstream call alone is within the timeout; two of them are not.
CALL_SECONDS = 0.8


@pytest.fixture
def world() -> Iterator[tuple[JarlessClient, StubAuthenticator]]:
    config: dict[str, Any] = copy.deepcopy(BASE_CONFIG)
    config["auth"]["providers"]["stub"]["development"]["timeout"] = {"seconds": TIMEOUT_SECONDS}
    stub = StubProvider()
    app = build_app(clock=FakeClock(), stub=stub, stub_persist=StubProvider(), raw_config=config)
    with make_client(app) as client:
        yield client, stub.instances["development"]


def _two_slow_calls(auth: StubAuthenticator, operation: Any) -> Any:
    async def slow(request: RefreshInput | AuthenticateInput) -> AuthResult:
        await asyncio.sleep(CALL_SECONDS)  # the token call
        await asyncio.sleep(CALL_SECONDS)  # the profile call
        return await operation(request)

    return slow


def test_a_refresh_has_one_deadline_for_both_calls(
    world: tuple[JarlessClient, StubAuthenticator],
) -> None:
    client, auth = world
    jar = sign_in(client)
    object.__setattr__(auth, "refresh", _two_slow_calls(auth, auth.refresh))
    started = time.monotonic()
    response = client.get(
        "/api/auth/stub/refresh",
        params={"env": "development"},
        headers={**XRW, **cookie_header(jar)},
    )
    elapsed = time.monotonic() - started
    assert TIMEOUT_SECONDS * 0.95 <= elapsed < TIMEOUT_SECONDS + 0.45, elapsed
    assert response.status_code == 401
    assert response.json() == refresh_failure(
        {
            "name": "ServiceUnavailableError",
            "message": "Failed to refresh access token, the identity provider did not "
            "answer within 1 seconds",
        }
    )


def test_a_sign_in_has_one_deadline(world: tuple[JarlessClient, StubAuthenticator]) -> None:
    client, auth = world
    object.__setattr__(auth, "authenticate", _two_slow_calls(auth, auth.authenticate))
    started = start(client)
    before = time.monotonic()
    response = client.get(
        "/api/auth/stub/handler/frame",
        params={"code": "valid-code", "state": started.state},
        headers=started.cookie_header,
    )
    elapsed = time.monotonic() - before
    assert TIMEOUT_SECONDS * 0.95 <= elapsed < TIMEOUT_SECONDS + 0.45, elapsed
    message, _ = page(response)
    assert message["error"] == {
        "name": "ServiceUnavailableError",
        "message": "Authentication failed, the identity provider did not answer within 1 seconds",
    }


@pytest.fixture
def silent_token_endpoint() -> Iterator[str]:
    """A real socket that accepts the token request and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/token"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_the_configured_timeout_of_any_oauth_provider_holds(silent_token_endpoint: str) -> None:
    # oidc's `timeout` key, here on the generic oauth2 provider, over real sockets.
    seconds = 0.7
    env: dict[str, Any] = {
        "clientId": "a",
        "clientSecret": "b",
        "authorizationUrl": "http://127.0.0.1:9/authorize",
        "tokenUrl": silent_token_endpoint,
        "timeout": {"milliseconds": 700},
        "connectTimeout": {"milliseconds": 300},
    }
    settings = read_settings(
        {
            "app": {"baseUrl": APP_BASE_URL},
            "backend": {"baseUrl": BACKEND_BASE_URL},
            "auth": {"session": {"secret": "s"}, "providers": {"oauth2": {"development": env}}},
        }
    )
    app = create_app(settings, development=True, deps=Dependencies(clock=SystemClock()))
    with make_client(app) as client:
        started = start(client, "oauth2")
        before = time.monotonic()
        response = client.get(
            "/api/auth/oauth2/handler/frame",
            params={"code": "c", "state": started.state},
            headers=started.cookie_header,
        )
        elapsed = time.monotonic() - before
    assert seconds * 0.95 <= elapsed < seconds + 0.5, elapsed
    message, _ = page(response)
    assert message["error"]["name"] == "ServiceUnavailableError"
    assert message["error"]["message"].endswith(
        f"the identity provider did not answer within {seconds:g} seconds"
    )
