"""Header and callback body caps (``backend.requestLimits``; app/server/middleware/limits.py
and app/server/protocol.py): 431 and 413 in Backstage's error shape, through the app and
over real HTTP."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.config.validation import ConfigError
from app.core.clock import SystemClock
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.support.server import AuthServer

GITHUB = {"development": {"clientId": "id", "clientSecret": "secret"}}


def _config(**backend: Any) -> dict[str, Any]:
    return {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {"baseUrl": "http://localhost:7007", **backend},
        "auth": {"providers": {"guest": {}, "github": GITHUB}},
    }


def _client(**backend: Any) -> TestClient:
    settings = read_settings(_config(**backend))
    app = create_app(settings, development=True, deps=Dependencies(clock=SystemClock()))
    return TestClient(app, base_url="http://localhost:7007")


def _error(name: str, message: str, method: str, url: str, status: int) -> dict[str, Any]:
    return {
        "error": {"name": name, "message": message},
        "request": {"method": method, "url": url},
        "response": {"statusCode": status},
    }


def test_too_many_header_fields_is_431() -> None:
    with _client() as client:
        fields = {f"x-field-{i}": "v" for i in range(90)}
        assert client.get("/api/auth/guest/refresh", headers=fields).status_code == 200
        fields.update({f"x-more-{i}": "v" for i in range(20)})
        response = client.get("/api/auth/guest/refresh?env=x", headers=fields)
    assert response.status_code == 431
    assert response.json() == _error(
        "RequestHeaderFieldsTooLargeError",
        "Too many header fields: at most 100 are allowed",
        "GET",
        "/guest/refresh?env=x",
        431,
    )


def test_header_bytes_over_the_cap_is_431_and_the_caps_are_configurable() -> None:
    with _client() as client:
        assert client.get("/healthz", headers={"x-big": "v" * 60_000}).status_code == 200
        response = client.get("/healthz", headers={"x-big": "v" * 70_000})
    assert response.status_code == 431
    assert response.json()["error"] == {
        "name": "RequestHeaderFieldsTooLargeError",
        "message": "Header fields too large: at most 65536 bytes are allowed",
    }
    limits = {"headerFields": 20, "headerBytes": 10_000}
    with _client(requestLimits=limits) as client:
        assert client.get("/healthz", headers={"x-big": "v" * 12_000}).status_code == 431
        many = {f"x-field-{i}": "v" for i in range(20)}
        assert client.get("/healthz", headers=many).status_code == 431


@pytest.mark.parametrize(
    "limits",
    [{"headerFields": 5}, {"headerBytes": 100}, {"callbackBodyBytes": 2 * 1024 * 1024}],
)
def test_limits_are_checked_at_start(limits: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match=r"backend\.requestLimits\."):
        read_settings(_config(requestLimits=limits))


@pytest.mark.parametrize(
    "path", ["/api/auth/github/handler/frame", "/api/auth/github/frame/handler"]
)
def test_a_callback_body_over_1_mib_is_413(path: str) -> None:
    with _client() as client:
        response = client.post(path, data={"state": "s", "code": "c" * (1024 * 1024 + 1)})
    assert response.status_code == 413, response.text
    assert response.json() == _error(
        "PayloadTooLargeError",
        "Request body too large: at most 1048576 bytes are allowed",
        "POST",
        path.removeprefix("/api/auth"),
        413,
    )


def test_a_streamed_callback_body_over_the_cap_is_413() -> None:
    # No Content-Length: counted as it arrives.
    def chunks() -> Any:
        for _ in range(20):
            yield b"code=" + b"c" * 1024

    with _client(requestLimits={"callbackBodyBytes": 8 * 1024}) as client:
        response = client.post(
            "/api/auth/github/handler/frame",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413, response.text


def test_a_callback_body_under_the_cap_reaches_the_handler() -> None:
    with _client() as client:
        response = client.post("/api/auth/github/handler/frame", data={"state": "bad"})
    # The handler's own refusal of the state, not the cap.
    assert response.status_code != 413
    assert "PayloadTooLargeError" not in response.text


# -- over real HTTP -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = _config()
    config["auth"]["providers"] = {"guest": {"dangerouslyAllowOutsideDevelopment": True}}
    with AuthServer(config, tmp_path_factory.mktemp("limits")) as running:
        yield running


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def _status_and_body(response: bytes) -> tuple[bytes, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_over_http_many_fields_are_431(server: AuthServer) -> None:
    fields = b"".join(b"x-field-%d: v\r\n" % i for i in range(150))
    head = b"GET /api/auth/guest/refresh HTTP/1.1\r\nHost: localhost\r\n" + fields + b"\r\n"
    status, body = _status_and_body(_exchange(server.port, head))
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b'"name":"RequestHeaderFieldsTooLargeError"' in body


def test_over_http_a_huge_header_is_refused_before_its_end(server: AuthServer) -> None:
    # A head that never ends: the answer comes once it passes the cap (64 KiB and room for
    # the request line), while the client is still sending; before, the server read on.
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nx-big: ")
        for _ in range(4):
            conn.sendall(b"v" * 64 * 1024)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    status, body = _status_and_body(received)
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large", received[:200]
    assert json.loads(body) == {
        "error": {
            "name": "RequestHeaderFieldsTooLargeError",
            "message": "Request head too large: at most 98304 bytes are allowed",
        },
        "request": {"method": "GET", "url": ""},
        "response": {"statusCode": 431},
    }
    # The server goes on answering.
    healthy = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert _status_and_body(_exchange(server.port, healthy))[0] == b"HTTP/1.1 200 OK"


def test_over_http_a_large_callback_body_is_413(server: AuthServer) -> None:
    body = b"state=s&code=" + b"c" * (2 * 1024 * 1024)
    head = (
        b"POST /api/auth/guest/handler/frame HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    # Answered on the head alone, before the body is sent.
    status, response_body = _status_and_body(_exchange(server.port, head))
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert b'"name":"PayloadTooLargeError"' in response_body
