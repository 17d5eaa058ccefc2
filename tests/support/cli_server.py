"""What the first-run tests share: the default config on a free port, a server process
with extra CLI options, the dev IdP's login page driven over HTTP, a slow OpenID
discovery endpoint."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import yaml

from tests.support.server import ROOT, AuthServer

DEFAULT_CONFIG = ROOT / "app" / "default-config.yaml"
SCOPE = "openid profile email offline_access"
XHR = {"X-Requested-With": "XMLHttpRequest"}


def default_config(port: int) -> dict[str, Any]:
    """``app/default-config.yaml`` with its port 7007 replaced by ``port`` (everything
    else exactly as ``make run`` serves it)."""
    text = DEFAULT_CONFIG.read_text().replace("localhost:7007", f"localhost:{port}")
    config: dict[str, Any] = yaml.safe_load(text)
    config["backend"]["listen"]["port"] = port
    return config


def without(config: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(config)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


class CliServer(AuthServer):
    """``AuthServer`` with extra ``serve`` options (``--workers``, ...)."""

    def __init__(self, *args: Any, extra_args: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_args = extra_args or []
        self.returncode: int | None = None

    def command(self) -> list[str]:
        return [*super().command(), "--log-format", "text", *self.extra_args]

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def wait(self, timeout: float) -> int:
        assert self._proc is not None
        self.returncode = self._proc.wait(timeout=timeout)
        return self.returncode


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


# -- the dev IdP's login page, as a person submits it ----------------------------------


def start_sign_in(client: httpx2.Client, base_url: str, provider: str = "oidc") -> httpx2.Response:
    """``/start`` as the frontend's popup opens it; returns the dev IdP's login page."""
    start = client.get(
        f"/api/auth/{provider}/start",
        params={"scope": SCOPE, "origin": base_url, "flow": "popup", "env": "development"},
    )
    assert start.status_code == 302, start.text
    login = client.get(start.headers["location"])
    assert login.status_code == 200, login.text
    return login


def submit_login(
    client: httpx2.Client, base_url: str, login: httpx2.Response, form: dict[str, str]
) -> httpx2.Response:
    """Submit the login form (it posts to its own URL); follow the 302 to our callback.
    Returns the callback's response (the popup page)."""
    answer = client.post(str(login.request.url), data=form, headers={"Origin": base_url})
    assert answer.status_code == 302, answer.text
    callback = client.get(answer.headers["location"])
    return callback


# -- a slow OpenID discovery document (an in-flight request during a shutdown) ----------


class SlowDiscovery:
    """Serves a discovery document after ``delay`` seconds; ``requested`` is set when a
    request arrives."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requested = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requested.set()
                time.sleep(outer.delay)
                base = f"http://127.0.0.1:{outer.port}"
                body = json.dumps(
                    {
                        "issuer": base,
                        "authorization_endpoint": f"{base}/authorize",
                        "token_endpoint": f"{base}/token",
                        "userinfo_endpoint": f"{base}/userinfo",
                        "jwks_uri": f"{base}/jwks",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/.well-known/openid-configuration"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SlowDiscovery:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
