"""``auth-backend serve --workers 2``: gunicorn with two uvicorn workers; each answers
requests, and SIGTERM to the master is a graceful stop (the request in flight completes,
then every process exits, the master with 0)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oidc_provider import free_port

from .support import CliServer, SlowDiscovery

SLOW_SECONDS = 2.0


def _config(port: int, metadata_url: str) -> dict[str, Any]:
    base = f"http://localhost:{port}"
    return {
        "app": {"baseUrl": base},
        "backend": {"baseUrl": base},
        "auth": {
            "session": {"secret": "workers-test-secret"},
            "providers": {
                "guest": {"dangerouslyAllowOutsideDevelopment": True},
                # /start fetches discovery: from a server that takes its time.
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


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


def _booted_workers(server: CliServer, count: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = re.findall(r"uvicorn\.error: Application startup complete", server.output)
        booted = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.output)]
        if len(started) >= count and len(booted) >= count:
            return sorted(booted)
        time.sleep(0.1)
    raise AssertionError(f"workers did not start:\n{server.output}")


@pytest.fixture
def slow() -> Iterator[SlowDiscovery]:
    with SlowDiscovery(SLOW_SECONDS) as discovery:
        yield discovery


@pytest.fixture
def server(tmp_path: Path, slow: SlowDiscovery) -> Iterator[CliServer]:
    port = free_port()
    server = CliServer(
        _config(port, slow.url),
        tmp_path,
        port=port,
        extra_args=["--workers", "2", "--graceful-timeout", "10"],
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_both_workers_answer(server: CliServer) -> None:
    workers = _booted_workers(server, 2)
    assert workers == _children(server.pid)
    assert len(set(workers)) == 2 and server.pid not in workers
    for serving in workers:
        # Stop the others: only `serving` can accept these connections.
        others = [w for w in workers if w != serving]
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            for _ in range(3):
                response = httpx.get(f"{server.base_url}/api/auth/guest/refresh", timeout=5.0)
                assert response.status_code == 200, response.text
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)


def test_sigterm_finishes_the_request_in_flight(server: CliServer, slow: SlowDiscovery) -> None:
    _booted_workers(server, 2)
    result: dict[str, Any] = {}

    def start() -> None:
        try:
            result["response"] = httpx.get(
                f"{server.base_url}/api/auth/oidc/start",
                params={"env": "production", "scope": "openid"},
                timeout=15.0,
            )
        except httpx.HTTPError as exc:  # pragma: no cover - reported below
            result["error"] = exc

    in_flight = threading.Thread(target=start)
    in_flight.start()
    assert slow.requested.wait(10), server.output
    began = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    assert server.wait(timeout=15) == 0, server.output
    in_flight.join(timeout=15)
    # The request that was in flight got its answer (a 302 to the IdP), after the delay.
    assert "error" not in result, result
    response = result["response"]
    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith(f"http://127.0.0.1:{slow.port}/authorize?")
    assert time.monotonic() - began < 10
    assert "Handling signal: term" in server.output
    assert "Waiting for connections to close" in server.output
    assert "Shutting down: Master" in server.output
    # Nothing listens any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/healthz", timeout=2.0)
