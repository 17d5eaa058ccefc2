"""Databases for the database-layer tests: SQLite (a file, ``:memory:``) and a real
PostgreSQL 16 started from the ``pgserver`` wheel (its binaries ship inside the wheel).

PostgreSQL refuses to run as root. Run as root (as CI is), pgserver creates a system user
``pgserver`` with ``useradd`` once, runs ``initdb``/``pg_ctl`` as that user and adds
``o+rx`` to the parent directories of the data directory. The data directory therefore
lives in its own temporary directory, not under pytest's basetemp (which pytest resets to
mode 0700 at every run, under a server another run may still be using). The server
listens on a Unix socket in the data directory only, never on a TCP port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("sqlite-file", "sqlite-memory", "postgres")
# Not :memory:, which belongs to one engine.
SHARED_BACKENDS = ("sqlite-file", "postgres")


def _fresh_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite-file":
        return f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}"
    if kind == "sqlite-memory":
        return "sqlite+aiosqlite:///:memory:"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.fresh_url()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    return _fresh_url(str(request.param), tmp_path, request)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database that several engines (instances, processes) can open."""
    return _fresh_url(str(request.param), tmp_path, request)


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_python(script: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -c script args...`` in a new process that imports ``app``."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for ``process``; its stdout, or an assertion error with its stderr."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}:\n{err}"
    return out


@pytest.fixture
def barrier(tmp_path: Path) -> Callable[[int], tuple[list[str], Callable[[], None]]]:
    """File-based start line for subprocesses: each gets ``ready``/``go`` paths; the
    returned release() waits until all are ready, then lets them go at once."""

    def make(count: int) -> tuple[list[str], Callable[[], None]]:
        go = tmp_path / "go"
        readies = [tmp_path / f"ready-{i}" for i in range(count)]

        def release() -> None:
            deadline = time.monotonic() + 60
            while not all(r.exists() for r in readies):
                assert time.monotonic() < deadline, "subprocesses did not get ready"
                time.sleep(0.01)
            go.touch()

        return [f"{r}|{go}" for r in readies], release

    return make
