"""The built image (``make image``), run as the README tells operators to run it.

Run by ``make test-image`` only: plain ``make test`` leaves this directory out (``--ignore``),
since it needs the image built first. The server runs from the image's own ENTRYPOINT and
CMD as the image's user, with the config mounted read-only at /etc/auth-backend, the session
secret from the environment and a writable data volume; everything is checked from outside
the container, through the tests' real OpenID provider (tests/op).

The tests share one server and run in file order: the last one stops it with SIGTERM.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.image import PORT, ImageServer
from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    frame_callback,
    popup_sign_in,
    start_openid_provider,
)
from tests.support.popup import popup_message

pytestmark = pytest.mark.integration

IMAGE = os.environ.get("AUTH_BACKEND_IMAGE", "auth-backend:test")
APP_ORIGIN = "http://localhost:3000"
BASE_URL = f"http://localhost:{PORT}"
SCOPE = "openid email profile offline_access"
XRW = {"X-Requested-With": "XMLHttpRequest"}
SECRET = "image-test-session-secret-of-32-characters"


@pytest.fixture(scope="module")
def op() -> Iterator[OpenIDProvider]:
    provider = start_openid_provider(clients=[backstage_client(frame_callback(BASE_URL))])
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def server(op: OpenIDProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    # The image listens on 7007 (its HEALTHCHECK asks there) on the host network.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", PORT)) == 0:
            pytest.fail(f"port {PORT} is taken on this machine; the image's server needs it")
    config: dict[str, Any] = {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {"baseUrl": BASE_URL},
        "auth": {
            # As the README's example: the secret comes from the environment, not the file.
            "session": {"secret": "${AUTH_SESSION_SECRET}"},
            "providers": {"oidc": {"development": op.environment()}},
        },
    }
    image_server = ImageServer(
        IMAGE,
        tmp_path_factory.mktemp("image"),
        config,
        env={"AUTH_SESSION_SECRET": SECRET},
    )
    try:
        image_server.start()
        yield image_server
    finally:
        image_server.stop()


def _jwks() -> KeySet:
    response = httpx2.get(f"{BASE_URL}/api/auth/.well-known/jwks.json", timeout=10)
    assert response.status_code == 200
    return KeySet.import_key_set(response.json())


def _healthcheck(server: ImageServer) -> int:
    """The image's HEALTHCHECK command, run inside the container as Docker runs it."""
    test = server.image_config["Healthcheck"]["Test"]
    assert test[0] == "CMD-SHELL", test
    return server.run_inside("/bin/sh", "-c", test[1], timeout=30).returncode


def test_runs_as_the_image_user_with_the_mounted_config_and_data_volume(
    server: ImageServer,
) -> None:
    assert server.image_config["User"] == "auth-backend"
    status = Path(f"/proc/{server.server_pid()}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert uid == server.run_inside("id", "-u").stdout.strip()
    assert int(uid) != 0
    # The default database (SQLite in the data directory) lives on the mounted volume.
    assert (server.data_dir / "auth.sqlite").is_file()
    # Unmounted, the directory belongs to the image's user: a new named volume is writable.
    owner = server.run_inside("stat", "-c", "%u %a", "/var/lib/auth-backend/data")
    assert owner.stdout.split() == [uid, "700"], owner.stdout + owner.stderr


def test_health(server: ImageServer) -> None:
    readiness = httpx2.get(f"{BASE_URL}/.backstage/health/v1/readiness", timeout=10)
    assert readiness.status_code == 200
    assert readiness.json() == {"status": "ok"}
    assert httpx2.get(f"{BASE_URL}/healthz", timeout=10).status_code == 200
    assert httpx2.get(f"{BASE_URL}/readyz", timeout=10).status_code == 200


def test_healthcheck_command_passes_inside_the_container(server: ImageServer) -> None:
    assert _healthcheck(server) == 0


def test_sign_in_refresh_and_jwks(server: ImageServer, op: OpenIDProvider) -> None:
    with httpx2.Client(follow_redirects=False, timeout=15.0) as browser:
        page = popup_sign_in(
            browser, f"{BASE_URL}/api/auth", login="alice", scope=SCOPE, origin=APP_ORIGIN
        )
        assert str(page.url).startswith(f"{BASE_URL}/api/auth/oidc/handler/frame?")
        assert page.status_code == 200
        message = popup_message(page.text)
        assert message["type"] == "authorization_response", message
        identity = message["response"]["backstageIdentity"]
        assert identity["identity"]["userEntityRef"] == "user:default/alice"
        assert browser.cookies.get("oidc-refresh-token")

        refreshed = browser.get(
            f"{BASE_URL}/api/auth/oidc/refresh",
            params={"optional": "", "scope": SCOPE, "env": "development"},
            headers=XRW,
        )
        assert refreshed.status_code == 200, refreshed.text
        body = refreshed.json()
        assert body["profile"]["email"] == "alice@example.com"

    keys = _jwks()
    for token in (identity["token"], body["backstageIdentity"]["token"]):
        decoded = jwt.decode(token, keys, algorithms=["ES256"])
        assert decoded.header["typ"] == "vnd.backstage.user"
        assert decoded.claims["sub"] == "user:default/alice"
        assert decoded.claims["iss"] == f"{BASE_URL}/api/auth"
    assert op.counts()["token"] == {"authorization_code": 1, "refresh_token": 1}


def test_final_stage_has_no_compilers_or_build_caches(server: ImageServer) -> None:
    found = server.run_inside(
        "/bin/sh",
        "-c",
        "for path in /root/.cache /tmp/pip-* /src /install; do test -e $path && echo $path; done;"
        " for tool in gcc cc c++ make; do command -v $tool; done; true",
        user="root",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout == ""
    # Every distribution the image carries came from the lock, and nothing is missing.
    checked = server.run_inside("python", "-m", "pip", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_sigterm_stops_the_server_gracefully(server: ImageServer) -> None:
    status = server.terminate_server()
    output = server.output
    # A graceful stop is a success: 0 (not 143, a process killed by the signal; not 137, a
    # SIGKILL after the graceful timeout; not 1, an error).
    assert status == 0, output
    assert "Traceback" not in output
    assert "Application shutdown complete." in output, output[-2000:]
    # Nothing listens any more, and the HEALTHCHECK notices.
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{BASE_URL}/healthz", timeout=5)
    assert _healthcheck(server) != 0
