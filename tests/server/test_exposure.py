"""What a production server exposes (issue 15, item 14): the demo page only when asked
for, the Swagger UIs with a switch, /metrics on a listener of its own."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.core.clock import SystemClock
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.support.cli_server import run_cli, write_config

BASE = "http://localhost:7007"


def _client(*, development: bool, **backend: Any) -> TestClient:
    settings = read_settings(
        {
            "app": {"baseUrl": "http://localhost:3000"},
            "backend": {"baseUrl": BASE, **backend},
            "auth": {"providers": {"guest": {"dangerouslyAllowOutsideDevelopment": True}}},
        }
    )
    app = create_app(settings, development=development, deps=Dependencies(clock=SystemClock()))
    return TestClient(app, base_url=BASE)


def _assert_not_found(response: httpx2.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["name"] == "NotFoundError"


def test_the_demo_page_is_off_in_production_unless_enabled() -> None:
    with _client(development=False) as client:
        _assert_not_found(client.get("/"))
        _assert_not_found(client.get("/static/demo.js"))
        assert "turned off (backend.demoPage)" in client.get("/").json()["error"]["message"]
    with _client(development=False, demoPage=True) as client:
        assert client.get("/").status_code == 200
        assert client.get("/static/demo.js").status_code == 200
    with _client(development=True) as client:
        assert client.get("/").status_code == 200
    with _client(development=True, demoPage=False) as client:
        _assert_not_found(client.get("/"))


def test_the_swagger_uis_have_a_switch() -> None:
    with _client(development=False) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/api/auth/guest/ui/").status_code == 200
        assert client.get("/operations/ui/").status_code == 200
    with _client(development=False, swaggerUi=False) as client:
        _assert_not_found(client.get("/docs"))
        assert client.get("/api/auth/guest/ui/").status_code == 404
        assert client.get("/operations/ui/").status_code == 404
        # The API itself is unaffected.
        assert client.get("/api/auth/guest/refresh").status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_metrics_on_their_own_listener() -> None:
    port = _free_port()
    with _client(development=False, metrics={"host": "127.0.0.1", "port": port}) as client:
        assert client.get("/api/auth/guest/refresh").status_code == 200
        _assert_not_found(client.get("/metrics"))
        scraped = httpx2.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert 'provider="guest"' in scraped.text
        other = httpx2.get(f"http://127.0.0.1:{port}/api/auth/guest/refresh")
        assert other.status_code == 404
        assert other.json()["error"]["name"] == "NotFoundError"
    # Stopped with the app.
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"http://127.0.0.1:{port}/metrics")


def test_without_backend_metrics_the_main_listener_serves_them() -> None:
    with _client(development=False) as client:
        assert client.get("/metrics").status_code == 200


def test_a_metrics_port_in_use_stops_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        client = _client(development=False, metrics={"host": "127.0.0.1", "port": port})
        with pytest.raises(OSError, match=rf"^backend.metrics: cannot listen on 127.0.0.1:{port}"):
            with client:
                pass


def test_check_config_shows_what_is_exposed(tmp_path: Path) -> None:
    config = {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {"baseUrl": BASE, "swaggerUi": False, "metrics": {"port": 9464}},
    }
    result = run_cli(
        "check-config", "--production", "--config", str(write_config(tmp_path / "c.yaml", config))
    )
    assert result.returncode == 0, result.stderr
    assert "demo page /: off; Swagger UIs and /docs: off\n" in result.stdout
    assert "metrics: 0.0.0.0:9464/metrics (backend.metrics)\n" in result.stdout
