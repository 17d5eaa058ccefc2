"""One deadline per incoming request (``auth.requestDeadline``): a sign-in callback or a
/refresh asks a slow identity provider and then a slow catalog, each within its own
timeout, but together past the deadline. Over real sockets (both are local HTTP servers
reached through the server's own outbound transport), on a real clock: the total holds
the deadline and the user gets Backstage's error, as for a provider timeout."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from connexion import AsyncApp

from app.config.settings import read_settings
from app.config.validation import ConfigError
from app.core.clock import SystemClock
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.app_factory import APP_BASE_URL, BACKEND_BASE_URL, make_client

from .helpers import XRW, cookie_header, page, sign_in, start
from .test_refresh import refresh_failure

DEADLINE_SECONDS = 2.0
OWN_TIMEOUT_SECONDS = 1.5  # the identity provider's and the catalog's
SLOW_SECONDS = 1.4  # each answers within its own timeout; together past the deadline
EMAIL = "alice@example.com"


def _unsigned_id_token() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'sub': 'alice', 'email': EMAIL})}."


class Upstreams:
    """The identity provider's token endpoint and the catalog, on one local server."""

    def __init__(self) -> None:
        self.delay = 0.0
        upstreams = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                upstreams.answer(
                    self,
                    {
                        "access_token": "at",
                        "token_type": "bearer",
                        "expires_in": 3600,
                        "refresh_token": "rt",
                        "id_token": _unsigned_id_token(),
                    },
                )

            def do_GET(self) -> None:  # noqa: N802
                entity = {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "User",
                    "metadata": {"name": "alice", "namespace": "default"},
                    "spec": {"profile": {"email": EMAIL}, "memberOf": []},
                }
                upstreams.answer(self, {"items": [entity], "pageInfo": {}, "totalItems": 1})

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        time.sleep(self.delay)
        data = json.dumps(body).encode()
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the caller gave up

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    servers = Upstreams()
    try:
        yield servers
    finally:
        servers.stop()


def _config(upstreams: Upstreams, **auth: Any) -> dict[str, Any]:
    own = {"seconds": OWN_TIMEOUT_SECONDS}
    return {
        "app": {"baseUrl": APP_BASE_URL},
        "backend": {"baseUrl": BACKEND_BASE_URL},
        "auth": {
            "session": {"secret": "request-deadline-secret-of-32-characters"},
            "catalog": {
                "remote": {
                    "baseUrl": upstreams.base_url,
                    "token": "catalog-token",
                    "timeout": own,
                    "cacheTtl": {"seconds": 0},
                }
            },
            "providers": {
                "oauth2": {
                    "development": {
                        "clientId": "a",
                        "clientSecret": "b",
                        "authorizationUrl": "http://127.0.0.1:9/authorize",
                        "tokenUrl": f"{upstreams.base_url}/token",
                        "timeout": own,
                        "signIn": {
                            "resolvers": [{"resolver": "emailMatchingUserEntityProfileEmail"}]
                        },
                    }
                }
            },
            **auth,
        },
    }


def _app(upstreams: Upstreams) -> AsyncApp:
    settings = read_settings(_config(upstreams, requestDeadline={"seconds": DEADLINE_SECONDS}))
    return create_app(settings, development=True, deps=Dependencies(clock=SystemClock()))


def _within_the_deadline(elapsed: float) -> None:
    # Without the deadline: 2 x 1.4 s and a success.
    assert DEADLINE_SECONDS * 0.95 <= elapsed < DEADLINE_SECONDS + 0.45, elapsed


def test_a_sign_in_callback_holds_the_request_deadline(upstreams: Upstreams) -> None:
    upstreams.delay = SLOW_SECONDS
    with make_client(_app(upstreams)) as client:
        started = start(client, "oauth2")
        before = time.monotonic()
        response = client.get(
            "/api/auth/oauth2/handler/frame",
            params={"code": "c", "state": started.state},
            headers=started.cookie_header,
        )
        elapsed = time.monotonic() - before
    _within_the_deadline(elapsed)
    message, _ = page(response)
    assert message["error"] == {
        "name": "ServiceUnavailableError",
        "message": "Authentication failed, the request did not complete within 2 seconds",
    }


def test_a_refresh_holds_the_request_deadline(upstreams: Upstreams) -> None:
    with make_client(_app(upstreams)) as client:
        jar = sign_in(client, "oauth2")
        upstreams.delay = SLOW_SECONDS
        before = time.monotonic()
        response = client.get(
            "/api/auth/oauth2/refresh",
            params={"env": "development"},
            headers={**XRW, **cookie_header(jar)},
        )
        elapsed = time.monotonic() - before
    _within_the_deadline(elapsed)
    assert response.json() == refresh_failure(
        {
            "name": "ServiceUnavailableError",
            "message": "Failed to refresh access token, the request did not complete within "
            "2 seconds",
        },
        url="/oauth2/refresh?env=development",
    )


def test_within_the_deadline_both_slow_calls_succeed(upstreams: Upstreams) -> None:
    """The default (20 s) leaves the same two calls alone."""
    upstreams.delay = SLOW_SECONDS
    settings = read_settings(_config(upstreams))
    assert settings.request_deadline_seconds == 20.0
    app = create_app(settings, development=True, deps=Dependencies(clock=SystemClock()))
    with make_client(app) as client:
        jar = sign_in(client, "oauth2")
    assert "oauth2-refresh-token" in jar


@pytest.mark.parametrize("value", ["soon", 0, "-1s"])
def test_a_bad_request_deadline_is_a_config_error(value: Any) -> None:
    raw = {
        "app": {"baseUrl": APP_BASE_URL},
        "backend": {"baseUrl": BACKEND_BASE_URL},
        "auth": {"requestDeadline": value},
    }
    with pytest.raises(ConfigError, match=r"auth\.requestDeadline"):
        read_settings(raw)
