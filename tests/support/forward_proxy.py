"""A real HTTP forward proxy (Debian's tinyproxy, scripts/install-proxy.sh) as a process,
with its own config and its own log.

Tests route this server's outbound calls through it (``HTTP_PROXY``/``HTTPS_PROXY``) and
read the proxy's log to prove which requests went through it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .oidc_provider import free_port


class ForwardProxy:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"tinyproxy-{self.port}.log"
        self.config_path = workdir / f"tinyproxy-{self.port}.conf"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ForwardProxy:
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not Path(binary).is_file():
            raise RuntimeError(
                "tinyproxy is missing: run scripts/install-proxy.sh (make test does)"
            )
        self.config_path.write_text(
            f"Port {self.port}\n"
            "Listen 127.0.0.1\n"
            "Timeout 30\n"
            f'LogFile "{self.log_path}"\n'
            # Info logs each request line ("Request (file descriptor N): GET http://...").
            "LogLevel Info\n"
            "MaxClients 20\n"
            "Allow 127.0.0.1\n"
            # No ConnectPort line: CONNECT tunnels to any port (the tests' TLS servers).
            "DisableViaHeader Yes\n"
        )
        # -d: stay in the foreground (a child of the test, stopped by it).
        self._proc = subprocess.Popen(
            [binary, "-d", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"tinyproxy exited:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tinyproxy not listening within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def requests(self) -> list[str]:
        """The request lines tinyproxy logged ("GET http://host:port/path HTTP/1.1")."""
        return [
            line.split("): ", 1)[1]
            for line in self.log().splitlines()
            if "Request (file descriptor" in line and "): " in line
        ]

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
