"""CPU per refresh grant (``POST /api/auth/v1/token``, ``grant_type=refresh_token``) of the
authorization server, ours and Backstage's side by side (issue 17).

    .venv/bin/python bench/refresh_grant.py --peer-dir /work/peer/backstage [--grants 100]
        [--rounds 3] [--profile DIR]

Each server gets the peer's app-config.yaml plus an overlay with one public static client
and ``auth.experimentalRefreshToken`` (catalog presence check off on both: the peer's
catalog has no guest user). One grant is obtained as a CLI does (authorize with PKCE,
approve as the guest user, code exchange); then the refresh token is rotated
``--grants`` times, sequentially, each request with the token the previous one returned
(a refresh token is single use, so wrk's fixed requests cannot do this). The figure is the
server's process CPU (utime + stime from /proc) over the measured grants, per grant,
after ``--warmup`` unmeasured ones; with ``--rounds`` (ours) and ``--backstage-rounds``
the lowest of that many blocks (on a shared machine, other processes only ever add CPU;
Backstage's ~80 ms per grant dwarfs that noise, and a round of it takes long). Each
round also measures the server's floor on the same connection:
``GET /.backstage/health/v1/liveness`` (routing, middlewares, access log) and
``POST /api/auth/v1/revoke`` of a malformed token (the same plus a form body parsed and
validated, no database). Backstage hashes each new refresh token with scrypt (N=16384)
and compares the presented one with scrypt; ours uses HMAC-SHA256.

``--profile DIR``: ours runs under cProfile (``profiled_serve.py``) during its first
round of grants only, the statistics go to ``DIR/ours-refresh-grant.prof`` and the
share of each part of the stack is printed (the event loop's thread only: aiosqlite's
worker thread is not in it, and time a greenlet waits for it is).
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import os
import pstats
import secrets
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procs  # noqa: E402
from bench.servers import (  # noqa: E402
    VENV_BIN,
    Ports,
    ServerSpec,
    backstage_spec,
    our_spec,
    prepare_peer,
    shipped_venv,
)

CLIENT = "bench-cli"
CALLBACK = "http://127.0.0.1:8899/callback"
GUEST = "/api/auth/guest/refresh"
LIVENESS = "/.backstage/health/v1/liveness"
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


def _first_refresh_token(client: httpx2.Client) -> str:
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


def _refresh(client: httpx2.Client, token: str) -> str:
    response = client.post(
        "/api/auth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": CLIENT},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["refresh_token"])


def _block(client: httpx2.Client, tree: list[int], count: int, call: Any) -> tuple[float, float]:
    """CPU ms and median wall ms per call of ``count`` sequential calls."""
    cpu0 = sum(procs.tree_cpu_seconds(tree).values())
    wall: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        wall.append(time.perf_counter() - started)
    cpu1 = sum(procs.tree_cpu_seconds(tree).values())
    return (cpu1 - cpu0) * 1000 / count, statistics.median(wall) * 1000


def measure(
    spec: ServerSpec, work: Path, grants: int, warmup: int, rounds: int, profile: Path | None
) -> dict[str, float]:
    spec.fresh()
    service = procs.start(
        spec.name, spec.cmd, cwd=spec.cwd, env=spec.env, log=work / f"{spec.name}.log"
    )
    best: dict[str, float] = {}
    try:
        procs.wait_for_200(service, spec.port, GUEST, XRW)
        with httpx2.Client(base_url=f"http://127.0.0.1:{spec.port}", timeout=30) as client:
            token = _first_refresh_token(client)
            for _ in range(warmup):
                token = _refresh(client, token)
            tree = procs.process_tree(service.pid)

            def grant() -> None:
                nonlocal token
                token = _refresh(client, token)

            def liveness() -> None:
                assert client.get(LIVENESS).status_code == 200

            def noop_post() -> None:
                client.post("/api/auth/v1/revoke", data={"token": "x", "client_id": CLIENT})

            for round_ in range(rounds):
                if profile is not None and round_ == 0:
                    os.kill(service.pid, signal.SIGUSR1)
                cpu, p50 = _block(client, tree, grants, grant)
                if profile is not None and round_ == 0:
                    os.kill(service.pid, signal.SIGUSR2)
                    time.sleep(1.0)
                    cpu = p50 = float("inf")  # the profiler's own cost is not a figure
                figures = {
                    "cpu_ms": cpu,
                    "p50_ms": p50,
                    "liveness_ms": _block(client, tree, grants, liveness)[0],
                    "noop_post_ms": _block(client, tree, grants, noop_post)[0],
                }
                best = {k: min(v, best.get(k, v)) for k, v in figures.items()}
    finally:
        procs.stop(service)
    best["per_s"] = 1000 / best["p50_ms"]
    return best


def _part(path: str, function: str) -> str:
    if any(m in path for m in ("sqlalchemy", "aiosqlite")) or function in (
        "<method 'switch' of 'greenlet.greenlet' objects>",
        "<method 'put_nowait' of '_queue.SimpleQueue' objects>",
    ):
        return "database driver (SQLAlchemy, aiosqlite, greenlet)"
    if any(m in path for m in ("connexion", "werkzeug", "jsonschema", "multipart")):
        return "connexion (routing, validation, form parsing)"
    if any(m in path for m in ("starlette", "asgi_correlation_id")):
        return "starlette and middleware libraries"
    if any(m in path for m in ("uvicorn", "httptools", "asyncio", "selectors")):
        return "uvicorn and the event loop"
    if any(m in path for m in ("joserfc", "cryptography", "json", "hmac", "hashlib")) or (
        "sign" in function or "/app/identity/" in path
    ):
        return "token signing, hashing, JSON"
    if "logging" in path:
        return "logging"
    if any(m in path for m in ("/app/server/", "/app/observability/", "prometheus")):
        return "our middlewares and metrics"
    if "/app/" in path:
        return "our handler, service and store"
    return "other (builtins, stdlib)"


def print_profile(path: Path) -> None:
    stats = pstats.Stats(str(path))
    parts: collections.Counter[str] = collections.Counter()
    for (file, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        parts[_part(file, function)] += row[2]
    total = sum(parts.values())
    print(f"\nprofile of ours ({path}), share of the event loop's thread:")
    for part, seconds in parts.most_common():
        print(f"  {seconds / total * 100:5.1f} %  {part}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-dir", type=Path)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/auth-backend-bench"))
    parser.add_argument("--grants", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of ours")
    parser.add_argument("--backstage-rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="a folder for ours' cProfile output")
    parser.add_argument(
        "--install",
        choices=("shipped", "dev"),
        default="shipped",
        help="our server from a venv with the project installed as shipped (the wheel, "
        "runtime dependencies; <work-dir>/venv-shipped) or from this development venv",
    )
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
    venv_bin = shipped_venv(work) if args.install == "shipped" else VENV_BIN
    ours = our_spec(peer, work, ports, 1, venv_bin=venv_bin)
    results: dict[str, dict[str, float]] = {}
    profile_out = args.profile / "ours-refresh-grant.prof" if args.profile else None
    for spec in (backstage, ours):
        cmd = (*spec.cmd, *overlay)
        env = spec.env
        is_ours = spec is ours
        profile = profile_out if is_ours else None
        if profile is not None:
            profile.parent.mkdir(parents=True, exist_ok=True)
            here = Path(__file__).resolve().parent
            cmd = (sys.executable, str(here / "profiled_serve.py"), *cmd[1:])
            env = {**env, "PROFILE_OUT": str(profile)}
        spec = ServerSpec(**{**spec.__dict__, "cmd": cmd, "env": env})
        rounds = args.rounds if is_ours else args.backstage_rounds
        rounds += 1 if profile is not None else 0
        results[spec.name] = measure(spec, work, args.grants, args.warmup, rounds, profile)
    print(f"refresh grants: {args.grants} sequential, after {args.warmup} unmeasured", end="")
    print(f"; lowest of {args.rounds} rounds of ours, {args.backstage_rounds} of Backstage\n")
    print(
        "| server | CPU ms per refresh grant | p50 ms | grants/s (sequential) "
        "| CPU ms per liveness GET | CPU ms per no-op POST |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['cpu_ms']:.2f} | {r['p50_ms']:.2f} | {r['per_s']:.0f} "
            f"| {r['liveness_ms']:.2f} | {r['noop_post_ms']:.2f} |"
        )
    ratio = results["ours-1w"]["cpu_ms"] / results["backstage"]["cpu_ms"]
    print(f"\nCPU per refresh grant, ours / Backstage: {ratio:.3f}")
    if profile_out is not None:
        print_profile(profile_out)


if __name__ == "__main__":
    main()
