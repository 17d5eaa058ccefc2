"""Wire compatibility with the real Backstage auth backend.

Runs the Backstage peer's protocol driver (``driver/drive.py``) against this server,
started with the peer's ``app-config.yaml`` unchanged and the peer's mock IdP
(``peer_idp/idp.mjs``), and compares every exchange with the transcripts recorded from
real Backstage 0.31 (``fixtures/transcripts.md``; ``fixtures/README.md`` says where they
come from and how to record them again). Everything is in the repository, so a plain
clone runs it. Remaining differences are listed in ``docs/compatibility.md`` with their
reasons.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPAT = Path(__file__).resolve().parent
FIXTURES = COMPAT / "fixtures"
PEER_CONFIG = FIXTURES / "app-config.yaml"
DRIVER = COMPAT / "driver" / "drive.py"
# node resolves oauth2-mock-server from the node_modules beside idp.mjs.
IDP_DIR = COMPAT / "peer_idp"
# `make compat-live` points this at a transcript it has just recorded from a running
# Backstage, to compare with today's Backstage instead of the committed recording.
BACKSTAGE_TRANSCRIPTS = Path(
    os.environ.get("COMPAT_TRANSCRIPTS") or FIXTURES / "transcripts.md"
).resolve()

# Exchanges where we differ on purpose (docs/compatibility.md says why).
EXPECTED_DIFFERENCES = {
    # The refresh cookie is a sealed session (JWE), not the IdP's token: a forged value
    # is refused before any call to the identity provider (Backstage forwards it, and the
    # peer's mock IdP accepts anything).
    17: (
        "401",
        "AuthenticationError: Refresh failed; caused by AuthenticationError: "
        "Invalid session cookie",
    ),
    # Backstage keeps the PKCE verifier in an express session (connect.sid); we derive it
    # from the nonce cookie, so a callback without connect.sid succeeds.
    28: ("200", "HTML postMessage authorization_response (success)"),
}

pytestmark = pytest.mark.integration


def _summary(path: Path) -> dict[int, tuple[str, str]]:
    rows: dict[int, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\| (\d+) \| .*? \| `[^`]*` \| (\d+) \| (.*) \|$", line)
        if m:
            # Set-Cookie order/values and random codes vary; compare status and outcome head.
            outcome = m.group(3).split("; Set-Cookie")[0]
            rows[int(m.group(1))] = (m.group(2), outcome)
    return rows


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            httpx2.get(url, timeout=1.0)
            return
        except httpx2.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def peer_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (IDP_DIR / "node_modules").exists():
        # A plain clone (make test installs them first): the lock file pins the 3 packages,
        # and npm's cache usually has them, which makes this well under a second.
        subprocess.run(
            ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=IDP_DIR,
            check=True,
        )
    work = tmp_path_factory.mktemp("peer")
    idp_log = open(work / "idp.log", "wb")  # noqa: SIM115 - closed in the finally below
    server_log = open(work / "server.log", "wb")  # noqa: SIM115
    idp = subprocess.Popen(
        ["node", str(IDP_DIR / "idp.mjs")], cwd=work, stdout=idp_log, stderr=subprocess.STDOUT
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--config",
            str(PEER_CONFIG),
            "--data-dir",
            str(work / "data"),
        ],
        cwd=ROOT,
        env={**os.environ, "NODE_ENV": "production"},
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait("http://localhost:8080/.well-known/openid-configuration", idp)
        _wait("http://localhost:7007/.backstage/health/v1/readiness", server)
        out = work / "transcripts.md"
        subprocess.run(
            [sys.executable, str(DRIVER), "--out", str(out)], cwd=work, check=True, timeout=120
        )
        yield out
    finally:
        for proc in (server, idp):
            proc.terminate()
            proc.wait(timeout=10)
        idp_log.close()
        server_log.close()


def test_every_exchange_matches_backstage(peer_run: Path) -> None:
    theirs = _summary(BACKSTAGE_TRANSCRIPTS)
    ours = _summary(peer_run)
    assert len(theirs) == 45
    assert set(ours) == set(theirs)
    differences = {n: ours[n] for n in theirs if ours[n] != theirs[n]}
    assert differences == EXPECTED_DIFFERENCES


def test_tokens_verify_like_backstage_backends(peer_run: Path) -> None:
    text = peer_run.read_text()
    # drive.py verifies each token's ES256 signature and its uip against our JWKS.
    assert "FAILED" not in text
    # As many verified signatures and uip proofs as in Backstage's own transcript.
    for marker in (
        "verification against /.well-known/jwks.json: OK",
        "verification against JWKS: OK",
        "`uip` claim: OK",
    ):
        assert text.count(marker) == BACKSTAGE_TRANSCRIPTS.read_text().count(marker) > 0


def test_cookie_names_paths_and_attributes_match(peer_run: Path) -> None:
    def cookies(path: Path) -> set[str]:
        found = set()
        for line in path.read_text().splitlines():
            if line.lower().startswith("set-cookie:"):
                value = line.split(":", 1)[1].strip()
                name = value.split("=", 1)[0]
                attrs = [a.split("=")[0] for a in value.split("; ")[1:]]
                path_attr = re.search(r"Path=([^;]+)", value)
                cleared = "Max-Age=0" in value
                found.add(
                    f"{name} path={path_attr and path_attr.group(1)} cleared={cleared} "
                    f"attrs={','.join(sorted(attrs))}"
                )
        return found

    theirs = {c for c in cookies(BACKSTAGE_TRANSCRIPTS) if not c.startswith("connect.sid")}
    ours = cookies(peer_run)
    # The one addition: we clear the nonce in the callback (single use); Backstage lets
    # it expire.
    nonce_clear = (
        "oidc-nonce path=/api/auth/oidc/handler cleared=True "
        "attrs=Expires,HttpOnly,Max-Age,Path,SameSite"
    )
    assert ours - theirs == {nonce_clear}
    assert theirs - ours == set()
