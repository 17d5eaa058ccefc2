"""Load generators: the OIDC login (for refresh cookies), wrk, and the 20-request burst."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import httpx2

LUA = Path(__file__).resolve().parent / "request.lua"
SCOPE = "openid email profile offline_access"
APP_ORIGIN = "http://localhost:3000"
XRW = "X-Requested-With: XMLHttpRequest"


def start_path() -> str:
    query = {"scope": SCOPE, "env": "development", "origin": APP_ORIGIN, "flow": "popup"}
    return "/api/auth/oidc/start?" + urlencode(query, quote_via=quote)


def refresh_path() -> str:
    query = urlencode({"scope": SCOPE, "env": "development"}, quote_via=quote)
    return f"/api/auth/oidc/refresh?optional&{query}"


def _absorb(jar: dict[tuple[str, str], str], response: httpx2.Response) -> None:
    for line in response.headers.get_list("set-cookie"):
        parts = [p.strip() for p in line.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {k.lower(): v for k, _, v in (p.partition("=") for p in parts[1:])}
        key = (name, attrs.get("path", "/"))
        if attrs.get("max-age") == "0":
            jar.pop(key, None)
        else:
            jar[key] = value


def _cookie_header(jar: dict[tuple[str, str], str], path: str) -> str:
    """What a browser sends for ``path``: cookies whose Path is a prefix, longest first."""
    chosen = [
        (p, n, v)
        for (n, p), v in jar.items()
        if p == "/" or path == p or path.startswith(p.rstrip("/") + "/")
    ]
    chosen.sort(key=lambda c: -len(c[0]))
    return "; ".join(f"{n}={v}" for _, n, v in chosen)


def login(port: int) -> str:
    """One popup sign-in (start -> IdP authorize -> handler/frame); the Cookie header a
    browser would then send to /refresh."""
    base = f"http://localhost:{port}"
    jar: dict[tuple[str, str], str] = {}
    with httpx2.Client(follow_redirects=False, timeout=30) as client:
        r = client.get(base + start_path())
        client.cookies.clear()
        assert r.status_code == 302, (r.status_code, r.text[:300])
        _absorb(jar, r)
        authorize = client.get(r.headers["location"])
        assert authorize.status_code == 302, authorize.status_code
        frame = authorize.headers["location"]
        r = client.get(frame, headers={"Cookie": _cookie_header(jar, urlsplit(frame).path)})
        client.cookies.clear()
        assert r.status_code == 200 and "authorization_response" in r.text, r.text[:500]
        assert '"error"' not in r.text and "%22error%22" not in r.text, r.text[:500]
        _absorb(jar, r)
    header = _cookie_header(jar, "/api/auth/oidc/refresh")
    assert "oidc-refresh-token" in header, header
    return header


def idp_counts(idp_port: int) -> dict[str, int]:
    counts: dict[str, int] = httpx2.get(f"http://127.0.0.1:{idp_port}/_counts").json()
    return counts


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors and timeouts
    statuses: dict[str, int]


def wrk(
    url: str,
    *,
    headers: list[str],
    duration: float,
    connections: int,
    threads: int = 1,
    cookies_file: Path | None = None,
) -> WrkResult:
    env = dict(os.environ, WRK_METHOD="GET", WRK_HEADERS="\n".join(headers))
    env["WRK_COOKIES_FILE"] = str(cookies_file) if cookies_file else ""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(**data)


# -- the burst: N concurrent refreshes of one session ----------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _burst(
    port: int, path: str, headers: list[str], size: int, batches: int, gap: float
) -> list[float]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(h + "\r\n" for h in headers)
    ).encode() + b"\r\n"
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(size)]
    latencies = []
    try:
        for _ in range(batches):
            started = time.perf_counter()
            for _, writer in conns:
                writer.write(request)
            statuses = await asyncio.gather(*(_read_response(r) for r, _ in conns))
            latencies.append(time.perf_counter() - started)
            bad = [s for s in statuses if s != 200]
            if bad:
                raise RuntimeError(f"burst: non-200 statuses {bad}")
            await asyncio.sleep(gap)
    finally:
        for _, writer in conns:
            writer.close()
    return latencies


def burst(
    port: int, path: str, headers: list[str], *, size: int, batches: int, gap: float = 0.05
) -> list[float]:
    """Latency (s) of each batch: ``size`` requests written at once on ``size`` keep-alive
    connections, until the last response is read."""
    return asyncio.run(_burst(port, path, headers, size, batches, gap))
