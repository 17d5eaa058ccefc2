"""Run a real OpenID provider (``oidc-provider`` v9 on Node) for integration tests.

The provider lives in ``tests/op`` (``server.mjs``).  It listens on 127.0.0.1 but its issuer
is ``http://localhost:<port>``.  Users log in through its development interaction pages
(any login, any password), which :func:`login_through_interactions` drives over plain HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2

OP_DIR = Path(__file__).resolve().parent.parent / "op"
SERVER_SCRIPT = OP_DIR / "server.mjs"
STARTUP_TIMEOUT = 30.0

_install_lock = threading.Lock()


# The confidential client our servers are configured as (OpenIDProvider.environment).
BACKSTAGE_CLIENT_ID = "backstage"
BACKSTAGE_CLIENT_SECRET = "backstage-secret"


def frame_callback(base_url: str, provider: str = "oidc") -> str:
    """Our server's callback for ``provider`` at ``base_url`` (its backend.baseUrl)."""
    return f"{base_url}/api/auth/{provider}/handler/frame"


def backstage_client(*redirect_uris: str, **registration: Any) -> dict[str, Any]:
    """The registration of client ``backstage`` at the provider: its callbacks, plus any
    other registration keys (grant types, algorithms, logout URIs)."""
    return {
        "client_id": BACKSTAGE_CLIENT_ID,
        "client_secret": BACKSTAGE_CLIENT_SECRET,
        "redirect_uris": list(redirect_uris),
        **registration,
    }


class OpenIDProviderError(RuntimeError):
    """The provider could not be installed/started, or a login could not be completed."""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise OpenIDProviderError("node is not on PATH; it is needed to run tests/op/server.mjs")
    return node


def ensure_installed() -> None:
    """Install ``tests/op``'s npm dependencies unless ``node_modules`` is already there."""
    with _install_lock:
        if (OP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise OpenIDProviderError("npm is not on PATH; it is needed to install tests/op")
        command = "ci" if (OP_DIR / "package-lock.json").is_file() else "install"
        result = subprocess.run(
            [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=OP_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise OpenIDProviderError(
                f"npm {command} in {OP_DIR} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _client_config(client: dict[str, Any]) -> dict[str, Any]:
    """Accept both oidc-provider metadata names and a couple of friendlier aliases."""
    config = dict(client)
    if "redirect_uri" in config:
        config.setdefault("redirect_uris", [config.pop("redirect_uri")])
    for key in ("client_id", "client_secret", "redirect_uris"):
        if key not in config:
            raise ValueError(f"OpenID provider client is missing {key!r}: {client!r}")
    return config


class OpenIDProvider:
    """A running (or startable) ``tests/op/server.mjs`` process.

    Usable as a context manager; ``start()``/``stop()`` are idempotent.
    """

    def __init__(
        self,
        *,
        clients: list[dict[str, Any]],
        rotate_refresh_tokens: bool = True,
        ttl: dict[str, int] | None = None,
        port: int | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.issuer = f"http://localhost:{self.port}"
        self.metadata_url = f"{self.issuer}/.well-known/openid-configuration"
        self.config: dict[str, Any] = {
            "clients": [_client_config(c) for c in clients],
            "rotateRefreshToken": rotate_refresh_tokens,
            "ttl": dict(ttl or {}),
            **(extra_config or {}),
        }
        self._process: subprocess.Popen[str] | None = None
        self._config_path: Path | None = None
        self._output: list[str] = []
        self._output_lock = threading.Lock()
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self.startup_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OpenIDProvider:
        if self._process is not None:
            return self
        ensure_installed()
        fd, name = tempfile.mkstemp(prefix="test-op-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.config, fh)
        self._config_path = Path(name)
        env = {
            **os.environ,
            "OP_PORT": str(self.port),
            "OP_CONFIG": name,
            "OP_ISSUER": self.issuer,
            "NODE_NO_WARNINGS": "1",
        }
        started = time.monotonic()
        self._process = subprocess.Popen(
            [_node(), str(SERVER_SCRIPT)],
            cwd=OP_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._read_output, name=f"oidc-provider:{self.port}", daemon=True
        )
        self._reader.start()
        deadline = started + STARTUP_TIMEOUT
        while not self._ready.wait(0.05):
            code = self._process.poll()
            if code is not None:
                self._reader.join(timeout=2)
                output = self.output
                self.stop()
                raise OpenIDProviderError(
                    f"OpenID provider exited with code {code} before it was ready:\n{output}"
                )
            if time.monotonic() > deadline:
                output = self.output
                self.stop()
                raise OpenIDProviderError(
                    f"OpenID provider was not ready within {STARTUP_TIMEOUT:.0f}s:\n{output}"
                )
        self.startup_seconds = time.monotonic() - started
        return self

    def _read_output(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for line in process.stdout:
            with self._output_lock:
                self._output.append(line)
            if line.startswith("READY "):
                self._ready.set()

    @property
    def output(self) -> str:
        """Everything the provider process printed so far (stdout + stderr)."""
        with self._output_lock:
            return "".join(self._output)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if self._reader is not None:
                self._reader.join(timeout=2)
            if process.stdout is not None:
                process.stdout.close()
        if self._config_path is not None:
            self._config_path.unlink(missing_ok=True)
            self._config_path = None

    def __enter__(self) -> OpenIDProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.issuer}/{path.lstrip('/')}"

    def metadata(self) -> dict[str, Any]:
        response = httpx2.get(self.metadata_url, timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def environment(self, prompt: str | None = "auto", **overrides: Any) -> dict[str, Any]:
        """Our ``oidc`` provider's config for one environment, as client ``backstage``
        (secret ``backstage-secret``) of this provider: users sign in by their email's
        local part, also without a catalog entity. ``prompt=None`` leaves the prompt out
        (Backstage's default, ``none``); ``overrides`` replace or add keys."""
        config: dict[str, Any] = {
            "metadataUrl": self.metadata_url,
            "clientId": BACKSTAGE_CLIENT_ID,
            "clientSecret": BACKSTAGE_CLIENT_SECRET,
            "signIn": {
                "resolvers": [
                    {
                        "resolver": "emailLocalPartMatchingUserEntityName",
                        "dangerouslyAllowSignInWithoutUserInCatalog": True,
                    }
                ]
            },
        }
        if prompt is not None:
            config["prompt"] = prompt
        return {**config, **overrides}

    def counts(self) -> dict[str, Any]:
        """Calls seen by the provider: ``{"token": {grant_type: n}, "token_errors": {...},
        "userinfo": n, "userinfo_errors": n, "revocation": n, "authorization": n,
        "end_session": n}``."""
        response = httpx2.get(self.url("/_counts"), timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def reset_counts(self) -> None:
        httpx2.post(self.url("/_counts/reset"), timeout=10).raise_for_status()


def start_openid_provider(
    *,
    clients: list[dict[str, Any]],
    rotate_refresh_tokens: bool = True,
    ttl: dict[str, int] | None = None,
    port: int | None = None,
    extra_config: dict[str, Any] | None = None,
) -> OpenIDProvider:
    """Start ``tests/op/server.mjs`` and wait until it is ready; the caller must ``stop()`` it.

    ``clients``: oidc-provider client metadata; at least ``client_id``, ``client_secret``,
    ``redirect_uris`` (defaults: client_secret_basic, authorization_code + refresh_token).
    ``ttl``: seconds per model, e.g. ``{"AccessToken": 60, "IdToken": 60, "RefreshToken": 600}``.
    ``extra_config``: other server.mjs options (``pkceRequired``, ``refreshTokens``,
    ``offlineAccessRequiresConsent``, ``conformIdTokenClaims``, ``tokenExchange``).
    """
    return OpenIDProvider(
        clients=clients,
        rotate_refresh_tokens=rotate_refresh_tokens,
        ttl=ttl,
        port=port,
        extra_config=extra_config,
    ).start()


# -- logging in through the devInteractions pages ----------------------------------------------


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = {
                "action": attributes.get("action", ""),
                "method": attributes.get("method", "get").lower(),
                "fields": {},
            }
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attributes.get("name"):
            self._current["fields"][attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(html: str) -> list[dict[str, Any]]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def _origin(url: str | httpx2.URL) -> tuple[str, str]:
    parts = urlsplit(str(url))
    return parts.scheme, parts.netloc


def popup_sign_in(
    browser: httpx2.Client,
    auth_api: str,
    *,
    login: str,
    scope: str = "openid email profile",
    origin: str = "http://localhost:3000",
    provider: str = "oidc",
    env: str = "development",
) -> httpx2.Response:
    """Our server's popup sign-in at ``auth_api`` (``.../api/auth``) through the real
    OpenID provider: ``/start``, the provider's login pages, then the callback, whose page
    (the popup's HTML; its ``url`` is the callback's) is returned."""
    start = browser.get(
        f"{auth_api}/{provider}/start",
        params={"scope": scope, "origin": origin, "flow": "popup", "env": env},
    )
    assert start.status_code == 302, start.text
    back = login_through_interactions(browser, start.headers["location"], login=login)
    return browser.get(back.headers["location"])


def login_through_interactions(
    client: httpx2.Client,
    authorize_url: str,
    *,
    login: str,
    password: str = "pw",
    issuer: str | None = None,
    max_steps: int = 20,
) -> httpx2.Response:
    """Drive the provider's login + consent pages, starting at ``authorize_url``.

    Redirects are followed by hand (``client`` keeps the provider's cookies, so a second call
    with the same client reuses the provider session).  Returns the first redirect response
    whose ``Location`` leaves the provider's origin, i.e. the redirect to the client's
    ``redirect_uri`` carrying ``code``/``state`` (or ``error``); it is not followed.

    ``authorize_url`` is normally the provider's authorization URL.  If ``issuer`` is given,
    ``authorize_url`` may also be e.g. our server's ``/start`` URL: redirects are followed
    until the provider is reached.
    """
    op_origin = _origin(issuer or authorize_url)
    reached_op = False
    request = client.build_request("GET", authorize_url)
    trail: list[str] = []
    for _ in range(max_steps):
        reached_op = reached_op or _origin(request.url) == op_origin
        response = client.send(request, follow_redirects=False)
        trail.append(f"{request.method} {request.url} -> {response.status_code}")
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if reached_op and _origin(location) != op_origin:
                return response
            request = client.build_request("GET", location)
            continue
        if response.status_code != 200:
            raise OpenIDProviderError(
                f"unexpected response from the provider: {response.status_code}\n"
                f"{response.text[:2000]}\ntrail: {trail}"
            )
        forms = [f for f in _forms(response.text) if f["method"] == "post"]
        if not forms:
            raise OpenIDProviderError(
                f"no form on provider page {response.url}:\n{response.text[:2000]}\ntrail: {trail}"
            )
        form = forms[0]
        fields: dict[str, str] = dict(form["fields"])
        if "login" in fields or fields.get("prompt") == "login":
            fields["login"] = login
            fields["password"] = password
        action = urljoin(str(response.url), form["action"] or str(response.url))
        request = client.build_request("POST", action, data=fields)
    raise OpenIDProviderError(f"login did not finish within {max_steps} steps; trail: {trail}")


def end_session_through_confirmation(client: httpx2.Client, logout_url: str) -> httpx2.Response:
    """Follow an RP-initiated logout URL and confirm on the provider's page ("Yes, sign me
    out"); returns the provider's final redirect (to post_logout_redirect_uri) or page."""
    page = client.get(logout_url, follow_redirects=False)
    if page.is_redirect:
        return page
    forms = [f for f in _forms(page.text) if f["method"] == "post"]
    if not forms:
        raise OpenIDProviderError(f"no logout form on the provider's page:\n{page.text[:2000]}")
    form = forms[0]
    return client.post(
        urljoin(str(page.url), form["action"]),
        data={**form["fields"], "logout": "yes"},
        follow_redirects=False,
    )
