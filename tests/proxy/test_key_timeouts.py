"""The proxy providers' ``timeout`` (ours): a key endpoint slower than it fails within it,
measured over real sockets through the server's own outbound transport, as the provider's
503, never a 500; a bad value is a config error at start."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from app.config.settings import read_settings
from app.config.validation import ConfigError
from app.identity.catalog import InMemoryCatalog
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.http_transport import OutboundTransport
from app.server.wiring import Dependencies
from tests.fakes.proxy_keys import ProxyKeyServer
from tests.proxy.helpers import (
    JANE,
    PROVIDERS_CONFIG,
    PROXY_DEFINITIONS,
    alb,
    cf,
    client,
    config,
    iap,
)

SLOW_SECONDS = 3.0


class _ToSlowServer(httpx2.AsyncBaseTransport):
    """Sends every request to the local slow server (same path), through the real
    outbound transport: the providers' fixed key URLs land on a real, slow socket."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = OutboundTransport({})

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture(scope="module")
def slow_port() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            time.sleep(SLOW_SECONDS)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _refresh_past_slow_keys(
    keys: ProxyKeyServer,
    raw: dict[str, Any],
    slow_port: int,
    provider: str,
    headers: dict[str, str],
) -> tuple[dict[str, Any], float]:
    """A refresh whose key fetch lands on the slow server: its 503's error and the seconds
    the request took."""
    app = create_app(
        read_settings(raw),
        deps=Dependencies(
            clock=keys.clock,
            transport=_ToSlowServer(slow_port),
            catalog=InMemoryCatalog([JANE]),
            providers={**REGISTRY, **PROXY_DEFINITIONS},
        ),
    )
    with client(app) as http:
        started = time.perf_counter()
        response = http.get(f"/api/auth/{provider}/refresh", headers=headers)
        elapsed = time.perf_counter() - started
    assert response.status_code == 503, response.text
    error: dict[str, Any] = response.json()["error"]
    return error, elapsed


CASES = [
    ("awsalb", alb, "ALB public key"),
    ("gcpIap", iap, "Google IAP public keys"),
    ("cfaccess", cf, "Cloudflare Access signing keys"),
]


@pytest.mark.parametrize(("provider", "headers_of", "what"), CASES, ids=[c[0] for c in CASES])
def test_a_key_endpoint_slower_than_the_timeout_fails_within_it(
    slow_port: int, provider: str, headers_of: Any, what: str
) -> None:
    keys = ProxyKeyServer()  # signs the assertions; its keys are never served
    raw = config({provider: {**PROVIDERS_CONFIG[provider], "timeout": "500ms"}})
    error, elapsed = _refresh_past_slow_keys(keys, raw, slow_port, provider, headers_of(keys))
    assert error["name"] == "ServiceUnavailableError"
    assert what in error["message"]
    assert "timed out after 0.5 seconds" in error["message"]
    # 0.5 s configured; the endpoint takes 3 s (10 s is the default).
    assert 0.4 < elapsed < 1.5, elapsed


@pytest.mark.parametrize("provider", ["awsalb", "gcpIap", "cfaccess"])
@pytest.mark.parametrize("value", ["soon", 0, "-2s", {"hours": -1}])
def test_a_bad_timeout_is_a_config_error_at_start(provider: str, value: Any) -> None:
    providers = {provider: {**PROVIDERS_CONFIG[provider], "timeout": value}}
    with pytest.raises(ConfigError, match=rf"auth\.providers\.{provider}\.timeout"):
        create_app(
            read_settings(config(providers)),
            deps=Dependencies(
                clock=ProxyKeyServer().clock,
                catalog=InMemoryCatalog([JANE]),
                providers={**REGISTRY, **PROXY_DEFINITIONS},
            ),
        )


def test_a_proxy_refresh_holds_the_request_deadline(slow_port: int) -> None:
    """The key endpoint within the provider's own (default 10 s) timeout, but past
    auth.requestDeadline: the request ends at the deadline with the same 503."""
    keys = ProxyKeyServer()
    raw = config({"gcpIap": PROVIDERS_CONFIG["gcpIap"]})
    raw["auth"]["requestDeadline"] = "1s"
    error, elapsed = _refresh_past_slow_keys(keys, raw, slow_port, "gcpIap", iap(keys))
    assert error == {
        "name": "ServiceUnavailableError",
        "message": "Authentication failed, the request did not complete within 1 seconds",
    }
    assert 0.95 < elapsed < 1.6, elapsed
