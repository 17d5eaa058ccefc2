"""The single-process server ends a graceful stop with status 0; ``--version`` answers."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx2

from tests.support.oidc_provider import free_port
from tests.support.server import ROOT


def test_version_is_the_package_version() -> None:
    from importlib.metadata import version

    result = subprocess.run(
        [sys.executable, "-m", "app", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"auth-backend {version('backstage-auth-backend')}"


def test_sigterm_after_a_graceful_stop_exits_0(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--development", "--host", "127.0.0.1"]
        + ["--port", str(port), "--data-dir", str(tmp_path / "data"), "--log-format", "text"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                try:
                    if client.get("/healthz", timeout=1).status_code == 200:
                        break
                except httpx2.TransportError:
                    subprocess.run(["sleep", "0.1"], check=True)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "Application shutdown complete" in stderr
