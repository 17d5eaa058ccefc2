"""What the browser tests share: the static app server, the frontend bundle, the browser
log, and the steps a person takes on the pages (the OP's login form, its logout page)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    WebError,
)
from playwright.sync_api import (
    Error as PlaywrightError,
)

from tests.support.oidc_provider import OpenIDProvider
from tests.support.server import ROOT, AuthServer

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
FRONTEND = HERE / "frontend"
SCREENSHOTS = ROOT / "test-output" / "browser"

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing but loopback: any other host (the OP's pages import a web font) fails at once,
    # without a lookup, instead of waiting on this machine's closed network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
TIMEOUT_MS = 15_000

SCOPE = "openid email profile offline_access"
PASSWORD = "pw"


# -- the app's origin: static files ----------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class StaticApp:
    """Serves ``root`` on ``http://localhost:<port>`` from a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.origin = f"http://localhost:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"static-app:{self.port}", daemon=True
        )

    def start(self) -> StaticApp:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"{self.origin}/{path.lstrip('/')}"


@dataclass
class Stack:
    op: OpenIDProvider
    server: AuthServer
    app: StaticApp

    @property
    def signed_out_url(self) -> str:
        return self.app.url("/signed-out.html")


# -- the real Backstage client, bundled ------------------------------------------------------


class FrontendBuildError(RuntimeError):
    pass


_build_lock = threading.Lock()


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FrontendBuildError(
            f"{' '.join(command)} in {cwd} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )


def ensure_frontend_installed() -> None:
    """``npm ci`` in ``frontend/`` unless the stamp the Makefile's ``%/node_modules/.installed``
    rule also writes is newer than ``package.json`` and ``package-lock.json``."""
    stamp = FRONTEND / "node_modules" / ".installed"
    inputs = [FRONTEND / "package.json", FRONTEND / "package-lock.json"]
    with _build_lock:
        if stamp.is_file() and all(stamp.stat().st_mtime >= f.stat().st_mtime for f in inputs):
            return
        npm = shutil.which("npm")
        if npm is None:
            raise FrontendBuildError("npm is not on PATH; it is needed for tests/browser/frontend")
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], FRONTEND)
        stamp.touch()


def bundle_backstage_client(outfile: Path) -> None:
    """Bundle ``frontend/src/backstage-client.js`` (``@backstage/core-app-api`` and what it
    imports) into one browser script with the pinned esbuild."""
    ensure_frontend_installed()
    _run(
        [
            str(FRONTEND / "node_modules" / ".bin" / "esbuild"),
            "src/backstage-client.js",
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--target=chrome120",
            '--define:process.env.NODE_ENV="production"',
            "--log-level=warning",
            f"--outfile={outfile}",
        ],
        FRONTEND,
    )


# -- the browser ----------------------------------------------------------------------------


@dataclass
class BrowserLog:
    """What the pages of one context said and did, for assertions and failure messages."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {message.text}")

    def on_error(self, error: WebError) -> None:
        self.errors.append(str(error.error))

    def on_request_failed(self, request: Request) -> None:
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def on_response(self, response: Response) -> None:
        self.responses.append(response)

    def on_page(self, page: Page) -> None:
        self.pages.append(page)

    def responses_to(self, path: str) -> list[Response]:
        return [r for r in self.responses if path in r.url]

    def __str__(self) -> str:
        responses = [f"{r.status} {r.request.method} {r.url}" for r in self.responses]
        return (
            f"console: {self.console}\npage errors: {self.errors}\n"
            f"failed requests: {self.failed}\nresponses: {responses}"
        )


@dataclass
class Session:
    """One fresh browser profile (no cookies anywhere) and what happened in it."""

    context: BrowserContext
    log: BrowserLog

    def wait_for_text(self, page: Page, selector: str, text: str) -> None:
        """Wait until ``selector``'s text is ``text``; fail with what the browser saw."""
        try:
            page.wait_for_function(
                "([selector, text]) => document.querySelector(selector)?.textContent === text",
                arg=[selector, text],
            )
        except PlaywrightError as exc:
            actual = page.text_content(selector) if not page.is_closed() else "<closed>"
            error = page.text_content("#error") if not page.is_closed() else ""
            raise AssertionError(
                f"{selector} is {actual!r}, expected {text!r} (error: {error!r})\n{self.log}"
            ) from exc

    def wait_for_state(self, page: Page, state: str) -> None:
        self.wait_for_text(page, "#state", state)


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in_at_op(popup: Page, op: OpenIDProvider, login: str) -> None:
    """What a person does in the popup: the OP's login form, then its consent page. Returns
    once the popup has closed itself (it is never closed from here)."""
    popup.wait_for_url(f"{op.issuer}/**")
    popup.locator("input[name=login]").fill(login)
    popup.locator("input[name=password]").fill(PASSWORD)
    popup.locator("button[type=submit]", has_text="Sign-in").click()
    with popup.expect_event("close"):
        popup.locator("button[type=submit]", has_text="Continue").click()


def confirm_logout_at_op(page: Page, stack: Stack) -> None:
    """The OP's RP-initiated logout page ("Yes, sign me out"), then back to the app."""
    page.wait_for_url(f"{stack.op.issuer}/**")
    page.locator("button[name=logout][value=yes]").click()
    page.wait_for_url(stack.signed_out_url)
