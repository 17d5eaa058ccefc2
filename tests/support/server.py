"""Runs this server as a real process (``python -m app serve``) for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx2
import yaml

from .oidc_provider import free_port

ROOT = Path(__file__).resolve().parents[2]


class AuthServer:
    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        *,
        port: int | None = None,
        development: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://localhost:{self.port}"
        self.workdir = workdir
        self.config_path = workdir / f"app-config-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"server-{self.port}.log"
        self._env = {**os.environ, "NODE_ENV": "development" if development else "production"}
        self._env.update(env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> AuthServer:
        self.launch()
        self.wait_ready(timeout)
        return self

    def command(self) -> list[str]:
        """What ``launch`` runs (subclasses add options or run something else)."""
        return [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--config",
            str(self.config_path),
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--data-dir",
            str(self.workdir / "data"),
        ]

    def launch(self, *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        """Start the process without waiting (to start several at the same moment)."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.command(),
            cwd=cwd,
            env={**self._env, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"server exited {self._proc.returncode}:\n{self.output}")
            try:
                httpx2.get(f"{self.base_url}/.backstage/health/v1/readiness", timeout=1.0)
                return
            except httpx2.HTTPError:
                time.sleep(0.1)
        raise TimeoutError(f"server did not start:\n{self.output}")

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> AuthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def two_instances(config: dict[str, Any], workdir: Path) -> Iterator[tuple[AuthServer, AuthServer]]:
    """Two servers on one configuration (one shared database), started together: both
    create and migrate it at the same moment, as a rolling deployment's instances do."""
    (workdir / "a").mkdir()
    (workdir / "b").mkdir()
    a = AuthServer(config, workdir / "a", development=True)
    b = AuthServer(config, workdir / "b", development=True)
    try:
        a.launch()
        b.launch()
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()
