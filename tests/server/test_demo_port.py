"""The demo on any port: ``serve --development --port N`` with the embedded config derives
the app origin, the development identity provider's issuer and the oidc provider's
discovery URL from N (Backstage may hold 7007); ``make run PORT=N`` passes it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support.cli_server import start_sign_in
from tests.support.oidc_provider import free_port
from tests.support.server import ROOT


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--development", "--port", str(port)]
        + ["--data-dir", str(tmp_path / "data"), "--log-format", "text"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_the_demo_signs_in_on_another_port(demo: str) -> None:
    with httpx2.Client(base_url=demo, timeout=10) as client:
        discovery = client.get("/dev-idp/.well-known/openid-configuration").json()
        assert discovery["issuer"] == f"{demo}/dev-idp"
        # /start fetched that discovery document (not 7007's) and accepted the origin.
        login = start_sign_in(client, demo)
        assert str(login.request.url).startswith(f"{demo}/dev-idp/")


def test_make_run_passes_port() -> None:
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=17313"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert "serve --development --log-format text --port 17313" in dry.stdout, dry.stdout
