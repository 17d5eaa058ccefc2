"""CPU per request of the app itself: the ASGI app driven directly, no HTTP server.

    .venv/bin/python bench/inproc.py --peer-dir /work/peer/backstage [--scenarios start,guest]
        [--requests 3000] [--idp-port 18091]

Builds the app from the peer's app-config.yaml (as ``ours-1w``: in-memory SQLite,
refreshGracePeriod 0s, JSON logs to /dev/null), starts the peer's mock IdP when a scenario
needs it (``start`` fetches discovery; ``oidc`` signs in once, then refreshes), runs each
scenario sequentially and prints ``time.process_time`` per request. Quicker and steadier
than ``bench/run.py`` for A/B comparisons of one change (run both variants interleaved,
several times, and compare medians); it leaves out uvicorn, the kernel and concurrency,
so its figures are lower than the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config.loader import load_config
from app.config.settings import read_settings  # noqa: E402
from app.core.clock import SystemClock  # noqa: E402
from app.observability.logs import configure_logging  # noqa: E402
from app.server.application import create_app  # noqa: E402
from app.server.wiring import Dependencies
from bench.load import _absorb, _cookie_header, refresh_path, start_path  # noqa: E402

XRW = (b"x-requested-with", b"XMLHttpRequest")


def _scope(path_and_query: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> dict[str, Any]:
    path, _, query = path_and_query.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost:7007"), *headers],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 7007),
    }


async def _call(app: Any, scope: dict[str, Any]) -> int:
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(dict(scope), receive, send)
    return status[0]


async def _lifespan(app: Any) -> asyncio.Task[None]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    return task


async def _refresh_cookie(app: Any) -> str:
    """One popup sign-in through the app and the mock IdP: the refresh cookie header."""
    jar: dict[tuple[str, str], str] = {}
    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(transport=transport, base_url="http://localhost:7007") as ours,
        httpx2.AsyncClient() as idp,
    ):
        started = await ours.get(start_path())
        _absorb(jar, started)
        authorized = await idp.get(started.headers["location"])
        frame = authorized.headers["location"]
        done = await ours.get(frame, headers={"Cookie": _cookie_header(jar, urlsplit(frame).path)})
        _absorb(jar, done)
    return _cookie_header(jar, "/api/auth/oidc/refresh")


async def _main(args: argparse.Namespace, app: Any) -> None:
    # Referenced until the end: a lifespan task collected as garbage shuts the app down.
    lifespan = await _lifespan(app)
    scenarios = {
        "health": _scope("/.backstage/health/v1/liveness"),
        "jwks": _scope("/api/auth/.well-known/jwks.json"),
        "guest": _scope("/api/auth/guest/refresh", (XRW,)),
        "start": _scope(start_path()),
    }
    if "oidc" in args.scenarios:
        header = await _refresh_cookie(app)
        cookie = (b"cookie", header.encode())
        scenarios["oidc"] = _scope(refresh_path(), (XRW, cookie))
    for name in args.scenarios:
        scope = scenarios[name]
        for _ in range(200):
            status = await _call(app, scope)
        assert status in (200, 302), (name, status)
        before = time.process_time()
        for _ in range(args.requests):
            await _call(app, scope)
        spent = time.process_time() - before
        print(f"{name:8s} {1000 * spent / args.requests:.3f} ms CPU/request ({status})")
    lifespan.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-dir", type=Path, default=Path("/work/peer/backstage"))
    parser.add_argument("--scenarios", default="health,jwks,guest,start")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--idp-port", type=int, default=18091)
    args = parser.parse_args()
    args.scenarios = args.scenarios.split(",")

    config = yaml.safe_load((args.peer_dir / "app-config.yaml").read_text())
    oidc = config["auth"]["providers"]["oidc"]["development"]
    oidc["metadataUrl"] = f"http://localhost:{args.idp_port}/.well-known/openid-configuration"
    config["auth"]["session"]["refreshGracePeriod"] = "0s"
    work = Path(tempfile.mkdtemp(prefix="inproc-"))
    (work / "app-config.yaml").write_text(yaml.safe_dump(config))

    idp = None
    if {"start", "oidc"} & set(args.scenarios):
        env = {**os.environ, "IDP_PORT": str(args.idp_port)}
        idp = subprocess.Popen(
            ["node", "idp.mjs"], cwd=args.peer_dir, env=env, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx2.get(oidc["metadataUrl"], timeout=1).raise_for_status()
                break
            except httpx2.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    os.environ["NODE_ENV"] = "production"
    if not os.environ.get("INPROC_LOGS"):
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the JSON logs, for the process's life
    configure_logging(json_logs=True)
    settings = read_settings(load_config([work / "app-config.yaml"], {}))
    app = create_app(settings, deps=Dependencies(clock=SystemClock(), data_dir=work / "data"))
    try:
        asyncio.run(_main(args, app))
    finally:
        if idp is not None:
            idp.terminate()
            idp.wait()


if __name__ == "__main__":
    main()
