"""Requests still in flight when ``--graceful-timeout`` expires are answered 503 in
Backstage's error body with ``Retry-After`` (app/server/middleware/shutdown.py), one log
line each and no traceback; the server still exits 0. One process and ``--workers``."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.cli_server import CliServer, SlowDiscovery
from tests.support.oidc_provider import free_port

IN_FLIGHT = 3


def _config(port: int, metadata_url: str) -> dict[str, Any]:
    base = f"http://localhost:{port}"
    return {
        "app": {"baseUrl": base},
        "backend": {"baseUrl": base},
        "auth": {
            "session": {"secret": "shutdown-test-secret-of-32-or-more-chars"},
            "providers": {
                "oidc": {
                    "production": {
                        "metadataUrl": metadata_url,
                        "clientId": "c",
                        "clientSecret": "s",
                    }
                },
            },
        },
    }


@pytest.fixture
def slow() -> Iterator[SlowDiscovery]:
    # Far longer than the graceful timeout: the requests are cut.
    with SlowDiscovery(8.0) as discovery:
        yield discovery


@pytest.mark.parametrize(
    "extra",
    [["--graceful-timeout", "1"], ["--workers", "1", "--graceful-timeout", "2"]],
    ids=["single", "workers"],
)
def test_requests_cut_at_the_graceful_deadline_get_503(
    tmp_path: Path, slow: SlowDiscovery, extra: list[str]
) -> None:
    port = free_port()
    server = CliServer(_config(port, slow.url), tmp_path, port=port, extra_args=extra)
    responses: list[httpx2.Response | Exception] = []

    def start() -> None:
        try:
            responses.append(
                httpx2.get(
                    f"{server.base_url}/api/auth/oidc/start",
                    params={"env": "production", "scope": "openid"},
                    timeout=15.0,
                )
            )
        except httpx2.HTTPError as exc:
            responses.append(exc)

    with server:
        threads = [threading.Thread(target=start) for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        assert slow.requested.wait(10), server.output
        time.sleep(0.3)
        began = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait(timeout=15) == 0, server.output
        for thread in threads:
            thread.join(timeout=15)
    assert time.monotonic() - began < 5
    assert len(responses) == IN_FLIGHT, responses
    for response in responses:
        assert isinstance(response, httpx2.Response), (response, server.output)
        assert response.status_code == 503, (response.text, server.output)
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "error": {
                "name": "ServiceUnavailableError",
                "message": "The server is shutting down; retry the request",
            },
            "request": {"method": "GET", "url": "/oidc/start?env=production&scope=openid"},
            "response": {"statusCode": 503},
        }
    output = server.output
    assert output.count("cut at the graceful shutdown deadline: answered 503") == IN_FLIGHT
    assert "Traceback" not in output
    assert "Exception in ASGI application" not in output
