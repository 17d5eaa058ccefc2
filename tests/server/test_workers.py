"""``auth-backend serve --workers 2``: gunicorn with two uvicorn workers.

Every worker listens on a socket of its own (``SO_REUSEPORT``), so the kernel spreads
connections opened at once across them; no connection is refused or reset once the first
worker answers, including while the second one starts or a killed one is replaced; the
master imports the app's modules and builds the app once for all workers, and every worker
signs with a key of its own; SIGTERM or SIGINT to the master is a
graceful stop (the request in flight completes, then every process exits, the master
with 0).

Which process serves a connection: the server-side socket of the connection (found by
the client's port in ``/proc/net/tcp``) is open in that process (``/proc/<pid>/fd``).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.cli_server import CliServer, SlowDiscovery, run_cli, write_config
from tests.support.oidc_provider import free_port
from tests.support.server import ROOT

SLOW_SECONDS = 2.0
CONNECTIONS = 16
IMPORTS_ENV = "AUTH_BACKEND_TEST_IMPORTS"
# On the server's PYTHONPATH: every process appends "<pid> <module>" to the file named by
# IMPORTS_ENV when it imports one of these (the "import" audit event is raised when a
# module is loaded, not when it is found in sys.modules: a forked worker whose master
# had imported it would not record it).
SITECUSTOMIZE = f"""
import os
import sys

_PATH = os.environ.get({IMPORTS_ENV!r})


def _record(event, args):
    if event == "import" and args[0] in ("connexion", "app.server.application"):
        with open(_PATH, "a") as out:
            out.write(f"{{os.getpid()}} {{args[0]}}\\n")


if _PATH:
    sys.addaudithook(_record)
"""


def _config(port: int, metadata_url: str) -> dict[str, Any]:
    base = f"http://localhost:{port}"
    return {
        "app": {"baseUrl": base},
        "backend": {"baseUrl": base},
        "auth": {
            "session": {"secret": "workers-test-secret-of-32-or-more-chars"},
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
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return sorted(out)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _server_sockets(port: int) -> list[tuple[int, str, str]]:
    """(remote port, state, inode) of the TCP sockets whose local port is ``port``."""
    rows = []
    for table in ("tcp", "tcp6"):
        for line in (Path("/proc/net") / table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                rows.append((int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]))
    return rows


LISTEN = "0A"
ESTABLISHED = "01"


def _listening(port: int, pids: list[int]) -> dict[int, set[str]]:
    """pid -> the listening sockets on ``port`` it holds."""
    listening = {inode for _, state, inode in _server_sockets(port) if state == LISTEN}
    return {pid: _socket_inodes(pid) & listening for pid in pids}


def _wait_listening(server: CliServer, workers: list[int], timeout: float = 20.0) -> None:
    """Until every worker listens on a socket of its own (and the master on none)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = _listening(server.port, [server.pid, *workers])
        own = [held[w] for w in workers]
        if all(own) and not held[server.pid]:
            assert all(not (a & b) for i, a in enumerate(own) for b in own[i + 1 :]), held
            return
        time.sleep(0.05)
    raise AssertionError(f"workers do not each listen: {held}\n{server.output}")


def _booted_workers(server: CliServer, count: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = re.findall(r"uvicorn\.error: Application startup complete", server.output)
        booted = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.output)]
        alive = [p for p in booted if _alive(p)]
        if len(started) >= count and len(alive) >= count:
            return sorted(alive)
        time.sleep(0.1)
    raise AssertionError(f"workers did not start:\n{server.output}")


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _served_by(
    port: int, pids: list[int], host: str = "127.0.0.1", family: int = socket.AF_INET
) -> Counter[int | None]:
    """Open CONNECTIONS keep-alive connections at once (as a load generator does), send a
    request on each, and count the connections per serving process."""
    socks = [socket.socket(family, socket.SOCK_STREAM) for _ in range(CONNECTIONS)]
    try:
        for sock in socks:
            sock.setblocking(False)
        for sock in socks:
            assert sock.connect_ex((host, port)) in (0, errno.EINPROGRESS)
        # All connected (the kernel completes a loopback handshake) before any request:
        # a shared listening socket wakes one worker that accepts them all.
        time.sleep(0.01)
        for sock in socks:
            sock.settimeout(10.0)
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        for sock in socks:
            response = _read_response(sock)
            assert response.startswith(b"HTTP/1.1 200 "), response
        owner = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
        by_client_port = {
            remote: owner.get(inode)
            for remote, state, inode in _server_sockets(port)
            if state == ESTABLISHED
        }
        return Counter(by_client_port.get(sock.getsockname()[1]) for sock in socks)
    finally:
        for sock in socks:
            sock.close()


class ConnectLoop:
    """Threads that open a connection, send a request and read the answer, again and
    again; every attempt is recorded as (start, end, outcome)."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.results: list[tuple[float, float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _attempt(self) -> str:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10.0) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                response = _read_response(sock)
        except ConnectionRefusedError:
            return "refused"
        except ConnectionResetError:
            return "reset"
        except OSError as exc:
            return f"error: {exc!r}"
        return "ok" if response.startswith(b"HTTP/1.1 200 ") else f"answer: {response[:80]!r}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            outcome = self._attempt()
            with self._lock:
                self.results.append((began, time.monotonic(), outcome))
            # A few hundred connections a second, not thousands (ephemeral ports).
            time.sleep(0.005)

    def __enter__(self) -> ConnectLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def ok_after(self, moment: float) -> int:
        return sum(1 for began, _, outcome in self.results if began > moment and outcome == "ok")

    def failures_after(self, moment: float) -> list[tuple[float, str]]:
        return [(b, o) for b, _, o in self.results if b > moment and o != "ok"]

    def first_ok(self) -> float:
        return min(end for _, end, outcome in self.results if outcome == "ok")


@pytest.fixture
def slow() -> Iterator[SlowDiscovery]:
    with SlowDiscovery(SLOW_SECONDS) as discovery:
        yield discovery


def _workers_server(
    tmp_path: Path, metadata_url: str, *extra: str, env: dict[str, str] | None = None
) -> CliServer:
    port = free_port()
    return CliServer(
        _config(port, metadata_url),
        tmp_path,
        port=port,
        env=env,
        extra_args=["--workers", "2", "--graceful-timeout", "10", *extra],
    )


@pytest.fixture
def server(tmp_path: Path, slow: SlowDiscovery) -> Iterator[CliServer]:
    server = _workers_server(tmp_path, slow.url)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_connections_opened_at_once_are_spread_across_the_workers(server: CliServer) -> None:
    workers = _booted_workers(server, 2)
    assert workers == _children(server.pid)
    assert len(set(workers)) == 2 and server.pid not in workers
    _wait_listening(server, workers)
    # With one shared socket most rounds went 16/0. Hashed across two sockets, a round
    # that leaves a worker out has a probability of 2/2**16.
    rounds = [_served_by(server.port, workers) for _ in range(5)]
    for counts in rounds:
        assert sum(counts.values()) == CONNECTIONS and None not in counts, rounds
        assert all(counts[w] >= 1 for w in workers), rounds


def test_no_connection_is_refused_or_reset_once_the_first_worker_answers(
    tmp_path: Path, slow: SlowDiscovery
) -> None:
    server = _workers_server(tmp_path, slow.url)
    try:
        with ConnectLoop(server.port) as loop:
            server.launch()
            workers = _booted_workers(server, 2)
            _wait_listening(server, workers)
            both = time.monotonic()
            time.sleep(0.5)
        assert server.output.count("Booting worker with pid") == 2, server.output
    finally:
        server.stop()
    first = loop.first_ok()
    assert loop.failures_after(first) == [], server.output
    assert loop.ok_after(both) > 0
    # Before the first worker listens, connections are refused (as by one uvicorn
    # process before it is ready); none waits in a queue that nobody accepts from.
    assert {outcome for _, _, outcome in loop.results} <= {"ok", "refused"}


def test_a_killed_worker_is_replaced_and_service_continues(server: CliServer) -> None:
    workers = _booted_workers(server, 2)
    _wait_listening(server, workers)
    victim, survivor = workers
    (victims_socket,) = _listening(server.port, [victim])[victim]
    os.kill(victim, signal.SIGKILL)
    # Until its listening socket is closed: once its last thread has exited (the process
    # shows as a zombie before that). Connections queued on it until then are reset.
    deadline = time.monotonic() + 10
    while any(inode == victims_socket for _, _, inode in _server_sockets(server.port)):
        assert time.monotonic() < deadline, server.output
        time.sleep(0.005)
    dead = time.monotonic()
    with ConnectLoop(server.port, threads=2) as loop:
        # gunicorn boots a replacement; meanwhile the survivor serves every connection.
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, server.output
            now = _children(server.pid)
            if len(now) == 2 and victim not in now:
                try:
                    _wait_listening(server, now, timeout=0.2)
                    listening_at = time.monotonic()
                    break
                except AssertionError:
                    pass
            time.sleep(0.1)
        time.sleep(0.3)
    # (seconds after the victim's socket closed, outcome); the replacement listened at:
    failures = [(round(t - dead, 3), outcome) for t, outcome in loop.failures_after(dead)]
    assert failures == [], (failures, round(listening_at - dead, 3), server.output)
    assert loop.ok_after(dead) > 0
    replacement = next(w for w in now if w != survivor)
    counts = _served_by(server.port, now)
    assert counts[replacement] >= 1 and counts[survivor] >= 1, counts


def test_the_master_imports_the_app_once_for_every_worker(
    tmp_path: Path, slow: SlowDiscovery
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    imports = tmp_path / "imports.txt"
    pythonpath = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p)
    server = _workers_server(
        tmp_path, slow.url, env={"PYTHONPATH": pythonpath, IMPORTS_ENV: str(imports)}
    )
    try:
        server.start()
        workers = _booted_workers(server, 2)
        _wait_listening(server, workers)
        recorded = [line.split() for line in imports.read_text().splitlines()]
        by_module: dict[str, set[int]] = {}
        for pid, module in recorded:
            by_module.setdefault(module, set()).add(int(pid))
        for module in ("connexion", "app.server.application"):
            # Loaded in the master before the fork: the workers share those pages and
            # never load them again.
            assert server.pid in by_module.get(module, set()), (module, recorded)
            assert not set(workers) & by_module[module], (module, recorded, workers)
    finally:
        server.stop()


def test_the_app_is_built_in_the_master_and_each_worker_signs_with_its_own_key(
    server: CliServer,
) -> None:
    workers = _booted_workers(server, 2)
    _wait_listening(server, workers)
    # Building the app logs this once per build: in the master only, not in the workers.
    assert server.output.count("guest provider enabled outside development") == 1, server.output
    # What the app holds per process starts in each worker's lifespan: its first key too
    # (a key made before the fork would be one private key, and one kid, in every worker).
    deadline = time.monotonic() + 10
    while True:
        keys = httpx2.get(f"{server.base_url}/api/auth/.well-known/jwks.json").json()["keys"]
        if len(keys) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len({key["kid"] for key in keys}) == 2, keys
    # New connections land on either worker: tokens come signed by both keys.
    signed_by: set[str] = set()
    for _ in range(40):
        with httpx2.Client(base_url=server.base_url) as client:
            response = client.get(
                "/api/auth/guest/refresh", headers={"X-Requested-With": "XMLHttpRequest"}
            )
            assert response.status_code == 200, response.text
            token = response.json()["backstageIdentity"]["token"]
        signed_by.add(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"])
        if len(signed_by) == 2:
            break
    assert signed_by == {key["kid"] for key in keys}, (signed_by, keys)


class FactoryServer(CliServer):
    """gunicorn itself, with the app factory and the worker class (docs/first-run.md)."""

    def command(self) -> list[str]:
        return [
            sys.executable,
            *("-m", "gunicorn", "-k", "app.server.workers.Worker", "-w", "2"),
            *("-b", f"127.0.0.1:{self.port}", "app.server.asgi:create_from_environment()"),
        ]

    def launch(self, *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        super().launch(
            cwd=self.workdir,
            env={
                "AUTH_BACKEND_CONFIG": str(self.config_path),
                "AUTH_BACKEND_DATA_DIR": str(self.workdir / "data"),
                "AUTH_BACKEND_LOG_FORMAT": "text",
                **(env or {}),
            },
        )


def test_gunicorn_serves_the_app_factory_with_the_worker_class(
    tmp_path: Path, slow: SlowDiscovery
) -> None:
    port = free_port()
    server = FactoryServer(_config(port, slow.url), tmp_path, port=port)
    try:
        server.start()
        workers = _booted_workers(server, 2)
        # gunicorn's own listening socket, shared by the workers; each built its app.
        assert server.output.count("guest provider enabled outside development") == 2
        for _ in range(10):
            response = httpx2.get(
                f"{server.base_url}/api/auth/guest/refresh",
                headers={"X-Requested-With": "XMLHttpRequest"},
            )
            assert response.status_code == 200, response.text
        assert set(_served_by(port, workers)) <= set(workers)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("host", "connect_to", "family"),
    [("::1", "::1", socket.AF_INET6), ("localhost", "127.0.0.1", socket.AF_INET)],
    ids=["ipv6", "localhost"],
)
def test_ipv6_addresses_and_host_names(
    tmp_path: Path, slow: SlowDiscovery, host: str, connect_to: str, family: int
) -> None:
    server = _workers_server(tmp_path, slow.url, "--host", host)
    try:
        server.launch()
        workers = _booted_workers(server, 2)
        _wait_listening(server, workers)
        counts = _served_by(server.port, workers, host=connect_to, family=family)
        assert sum(counts.values()) == CONNECTIONS and set(counts) == set(workers), counts
    finally:
        server.stop()


def test_an_address_in_use_stops_the_start(tmp_path: Path, slow: SlowDiscovery) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path / "config.yaml", _config(port, slow.url))
        result = run_cli(
            "serve",
            "--config",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--workers",
            "2",
            env={**os.environ, "NODE_ENV": "production"},
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot bind 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Booting worker" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_a_stop_signal_finishes_the_request_in_flight(
    server: CliServer, slow: SlowDiscovery, signum: signal.Signals
) -> None:
    _booted_workers(server, 2)
    result: dict[str, Any] = {}

    def start() -> None:
        try:
            result["response"] = httpx2.get(
                f"{server.base_url}/api/auth/oidc/start",
                params={"env": "production", "scope": "openid"},
                timeout=15.0,
            )
        except httpx2.HTTPError as exc:  # pragma: no cover - reported below
            result["error"] = exc

    in_flight = threading.Thread(target=start)
    in_flight.start()
    assert slow.requested.wait(10), server.output
    began = time.monotonic()
    os.kill(server.pid, signum)
    assert server.wait(timeout=15) == 0, server.output
    in_flight.join(timeout=15)
    # The request that was in flight got its answer (a 302 to the IdP), after the delay.
    assert "error" not in result, result
    response = result["response"]
    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith(f"http://127.0.0.1:{slow.port}/authorize?")
    assert time.monotonic() - began < 10
    # SIGINT too: gunicorn's own SIGINT would SIGKILL the workers at the graceful timeout.
    assert f"Handling signal: {signum.name[3:].lower()}" in server.output
    assert "was sent SIGKILL" not in server.output
    assert "Waiting for connections to close" in server.output
    assert "Shutting down: Master" in server.output
    # Nothing listens any more.
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.base_url}/healthz", timeout=2.0)
