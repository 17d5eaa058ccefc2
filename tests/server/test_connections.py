"""What a connection may hold (app/server/protocol.py, app/server/descriptors.py), over
real sockets: a request head must arrive within ``--head-timeout`` (a partial one is
answered 408, a silent connection closed); past ``--max-connections`` (by default below the
open file limit, which the server raises to its hard limit) a new connection is answered
503 at once and a line is logged; both with one process and with ``--workers``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.cli_server import CliServer
from tests.support.oidc_provider import free_port


def _config(port: int) -> dict[str, Any]:
    base = f"http://localhost:{port}"
    return {
        "app": {"baseUrl": base},
        "backend": {"baseUrl": base},
        "auth": {
            "session": {"secret": "connections-test-secret-of-32-or-more-chars"},
            "providers": {"guest": {"dangerouslyAllowOutsideDevelopment": True}},
        },
    }


class PrlimitServer(CliServer):
    """The server started under ``prlimit`` (it execs the server: same pid)."""

    def __init__(self, *args: Any, nofile: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nofile = nofile

    def command(self) -> list[str]:
        prefix = ["prlimit", f"--nofile={self.nofile}"] if self.nofile else []
        return [*prefix, *super().command()]


def _server(tmp_path: Path, *extra: str, nofile: str | None = None) -> PrlimitServer:
    port = free_port()
    return PrlimitServer(_config(port), tmp_path, port=port, extra_args=list(extra), nofile=nofile)


@pytest.fixture(params=[[], ["--workers", "1"]], ids=["single", "workers"])
def mode(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _body(answer: bytes) -> dict[str, Any]:
    return dict(json.loads(answer.split(b"\r\n\r\n", 1)[1]))


def test_unfinished_requests_are_closed_after_the_head_timeout(
    tmp_path: Path, mode: list[str]
) -> None:
    with _server(tmp_path, "--head-timeout", "1", *mode) as server:
        opened = time.monotonic()
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=8)
        partial = socket.create_connection(("127.0.0.1", server.port), timeout=8)
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        # A kept-alive connection: its first request is served, the second never finishes.
        kept = socket.create_connection(("127.0.0.1", server.port), timeout=8)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            chunk = kept.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200 "), first
        kept.sendall(b"GET /healthz HTT")
        with silent, partial, kept:
            assert _read_all(silent) == b""
            answer = _read_all(partial)
            second = _read_all(kept)
        elapsed = time.monotonic() - opened
    # Closed by the head timeout (1 s), not the sockets' 8 s timeout (the margin is for a
    # loaded machine).
    assert 0.9 < elapsed < 7, elapsed
    for cut in (answer, second):
        assert cut.startswith(b"HTTP/1.1 408 "), cut
        assert b"connection: close" in cut
        assert _body(cut)["error"] == {
            "name": "RequestTimeoutError",
            "message": "Request head not received within 1 seconds",
        }
        assert _body(cut)["response"] == {"statusCode": 408}


def test_connections_past_the_limit_are_answered_503_and_logged(
    tmp_path: Path, mode: list[str]
) -> None:
    with _server(tmp_path, "--max-connections", "4", *mode) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
        try:
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
                answer = _read_all(extra)
        finally:
            for sock in held:
                sock.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"retry-after: 1" in answer
        assert _body(answer)["error"]["name"] == "ServiceUnavailableError"
        deadline = time.monotonic() + 5
        while "refused 1 connection(s): 4 open, the limit is 4" not in server.output:
            assert time.monotonic() < deadline, server.output
            time.sleep(0.1)
        # The held ones closed: served again.
        for _ in range(50):
            if httpx2.get(f"{server.base_url}/healthz", timeout=5).status_code == 200:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(server.output)


@pytest.fixture
def flooded(tmp_path: Path) -> Iterator[PrlimitServer]:
    # A soft limit of 256 (hard 320): raised to 320 at start, 256 connections allowed.
    server = _server(tmp_path, "--head-timeout", "2", nofile="256:320")
    with server:
        yield server


def test_a_flood_of_idle_connections_never_starves_new_ones(flooded: PrlimitServer) -> None:
    limits = Path(f"/proc/{flooded.pid}/limits").read_text()
    row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert row.split()[3:5] == ["320", "320"], row
    assert "open file limit 320: at most 256 connections per process" in flooded.output
    # More idle connections than descriptors: without a limit, accept() fails and new
    # connections wait unanswered until the client gives up.
    flood = []
    try:
        for _ in range(340):
            flood.append(socket.create_connection(("127.0.0.1", flooded.port), timeout=5))
        began = time.monotonic()
        with socket.create_connection(("127.0.0.1", flooded.port), timeout=5) as late:
            late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = late.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert time.monotonic() - began < 1
        # The idle ones are closed after the head timeout: served again.
        deadline = time.monotonic() + 8
        while True:
            try:
                if httpx2.get(f"{flooded.base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, flooded.output[-2000:]
            time.sleep(0.2)
    finally:
        for sock in flood:
            sock.close()
