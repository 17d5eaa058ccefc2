"""CPU per refresh grant (``POST /api/auth/v1/token``, ``grant_type=refresh_token``) of the
authorization server, ours and Backstage's side by side (issue 17).

    .venv/bin/python bench/refresh_grant.py --peer-dir /work/peer/backstage [--grants 100]

Each server gets the peer's app-config.yaml plus an overlay with one public static client
and ``auth.experimentalRefreshToken`` (catalog presence check off on both: the peer's
catalog has no guest user). One grant is obtained as a CLI does (authorize with PKCE,
approve as the guest user, code exchange); then the refresh token is rotated
``--grants`` times, sequentially, each request with the token the previous one returned
(a refresh token is single use, so wrk's fixed requests cannot do this). The figure is the
server's process CPU (utime + stime from /proc) over the measured grants, per grant,
after ``--warmup`` unmeasured ones. Backstage hashes each new refresh token with scrypt
(N=16384) and compares the presented one with scrypt; ours uses HMAC-SHA256.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procs  # noqa: E402
from bench.servers import Ports, ServerSpec, backstage_spec, our_spec, prepare_peer  # noqa: E402

CLIENT = "bench-cli"
CALLBACK = "http://127.0.0.1:8899/callback"
GUEST = "/api/auth/guest/refresh"
XRW = {"X-Requested-With": "XMLHttpRequest"}


def _overlay(work: Path) -> Path:
    overlay: dict[str, Any] = {
        "auth": {
            "staticClients": [{"clientId": CLIENT, "redirectUris": [CALLBACK]}],
            "experimentalRefreshToken": {
                "enabled": True,
                "dangerouslyDisableCatalogPresenceCheck": True,
            },
        }
    }
    path = work / "authz-overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def _first_refresh_token(client: httpx.Client) -> str:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    authorize = client.get(
        "/api/auth/v1/authorize",
        params={
            "client_id": CLIENT,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "openid offline_access",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert authorize.status_code == 302, authorize.text
    session_id = authorize.headers["location"].rsplit("/", 1)[1]
    user = client.get(GUEST, headers=XRW).json()["backstageIdentity"]["token"]
    approved = client.post(
        f"/api/auth/v1/sessions/{session_id}/approve",
        headers={"Authorization": f"Bearer {user}"},
    )
    assert approved.status_code == 200, approved.text
    code = parse_qs(urlsplit(approved.json()["redirectUrl"]).query)["code"][0]
    token = client.post(
        "/api/auth/v1/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
            "client_id": CLIENT,
        },
    )
    assert token.status_code == 200, token.text
    return str(token.json()["refresh_token"])


def _refresh(client: httpx.Client, token: str) -> str:
    response = client.post(
        "/api/auth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": CLIENT},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["refresh_token"])


def measure(spec: ServerSpec, work: Path, grants: int, warmup: int) -> dict[str, float]:
    spec.fresh()
    service = procs.start(
        spec.name, spec.cmd, cwd=spec.cwd, env=spec.env, log=work / f"{spec.name}.log"
    )
    try:
        procs.wait_for_200(service, spec.port, GUEST, XRW)
        with httpx.Client(base_url=f"http://127.0.0.1:{spec.port}", timeout=30) as client:
            token = _first_refresh_token(client)
            for _ in range(warmup):
                token = _refresh(client, token)
            tree = procs.process_tree(service.pid)
            cpu0 = sum(procs.tree_cpu_seconds(tree).values())
            wall: list[float] = []
            for _ in range(grants):
                started = time.perf_counter()
                token = _refresh(client, token)
                wall.append(time.perf_counter() - started)
            cpu1 = sum(procs.tree_cpu_seconds(tree).values())
    finally:
        procs.stop(service)
    return {
        "cpu_ms": (cpu1 - cpu0) * 1000 / grants,
        "p50_ms": statistics.median(wall) * 1000,
        "per_s": grants / sum(wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-dir", type=Path)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/auth-backend-bench"))
    parser.add_argument("--grants", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--backstage-port", type=int, default=17027)
    parser.add_argument("--ours-port", type=int, default=17030)
    args = parser.parse_args()
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    peer = prepare_peer(args.peer_dir, work)
    # The mock IdP is not needed: only the guest provider signs in.
    ports = Ports(idp=18099, backstage=args.backstage_port, ours=args.ours_port)
    overlay = ("--config", str(_overlay(work)))
    backstage = backstage_spec(peer, work, ports)
    ours = our_spec(peer, work, ports, 1)
    results: dict[str, dict[str, float]] = {}
    for spec in (backstage, ours):
        spec = ServerSpec(**{**spec.__dict__, "cmd": (*spec.cmd, *overlay)})
        results[spec.name] = measure(spec, work, args.grants, args.warmup)
    print(f"refresh grants: {args.grants} sequential, after {args.warmup} unmeasured\n")
    print("| server | CPU ms per refresh grant | p50 ms | grants/s (sequential) |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['cpu_ms']:.2f} | {r['p50_ms']:.2f} | {r['per_s']:.0f} |")
    ratio = results["ours-1w"]["cpu_ms"] / results["backstage"]["cpu_ms"]
    print(f"\nCPU per refresh grant, ours / Backstage: {ratio:.3f}")


if __name__ == "__main__":
    main()
