"""Where our server's CPU goes under one scenario: py-spy samples it while wrk loads it.

    python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy   # not a project dependency
    .venv/bin/python bench/hotspots.py --peer-dir /work/peer/backstage \\
        --py-spy /tmp/pyspy/bin/py-spy --scenario guest_refresh [--workers 1] [--duration 15]

Starts the peer's mock IdP and ours (the harness's config), signs in, runs wrk for
``--duration`` seconds while ``py-spy record --format raw`` samples the server (by default
only the thread holding the GIL), then prints the functions with the most samples: self
time (the frame on top) and inclusive time (anywhere on the stack), in % of all samples.
Also: ``--imports`` prints the slowest imports of a cold start (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

import load
import procs
import servers
from run import SCENARIOS

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module path after site-packages/app)``."""
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def _package(frame: str) -> str:
    """``f (starlette/routing.py)`` -> ``starlette``; ``app/identity/x.py`` -> ``app.identity``."""
    path = frame.rpartition(" (")[2].rstrip(")")
    parts = path.split("/")
    if parts[0] == "app" and len(parts) > 2:
        return f"app.{parts[1]}"
    if len(parts) == 1:
        return "stdlib: " + parts[0].split(".")[0].removeprefix("<frozen ").rstrip(">")
    return parts[0]


def top_functions(raw: Path, limit: int) -> str:
    packages: collections.Counter[str] = collections.Counter()
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # Root frame first, leaf last.
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            incl_counts[frame] += count
    out = [f"{total} samples", "", "self %  package (of the frame on top)"]
    out += [f"{100 * n / total:6.1f}  {p}" for p, n in packages.most_common(limit)]
    out += ["", "self %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in self_counts.most_common(limit)]
    out += ["", "incl %  function"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in incl_counts.most_common(limit)]
    return "\n".join(out)


def import_times(limit: int) -> str:
    """Cumulative import time of the modules a cold start imports, slowest first."""
    code = "import app.server.cli, app.server.application, app.handlers.oauth, app.handlers.proxy"
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative_us), int(self_us), name.rstrip()[1:]))
    top_level = [r for r in rows if not r[2].startswith(" ")]
    total = sum(r[0] for r in top_level)
    out = [f"total {total / 1e6:.2f} s", "cumulative ms  self ms  module"]
    out += [
        f"{c / 1000:13.0f}  {s / 1000:7.0f}  {n}"
        for c, s, n in sorted(rows, key=lambda r: -r[0])[:limit]
    ]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer-dir", type=Path)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/auth-backend-bench"))
    ap.add_argument("--py-spy", default="py-spy")
    wrk_scenarios = [s for s in SCENARIOS if s != "burst20"]
    ap.add_argument("--scenario", default="guest_refresh", choices=wrk_scenarios)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--file-db", action="store_true", help="one worker on a SQLite file")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument(
        "--mode",
        choices=["gil", "all", "native"],
        default="gil",
        help="gil: only the thread holding the GIL (Python CPU; the default, as py-spy counts "
        "threads blocked on a lock as active here); all: every thread; native: C frames too "
        "(pauses the server for each sample: much slower)",
    )
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--idp-port", type=int, default=18090)
    ap.add_argument("--ours-port", type=int, default=17020)
    ap.add_argument("--imports", action="store_true", help="only the import-time profile")
    args = ap.parse_args()
    if args.imports:
        print(import_times(args.limit))
        return 0

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    peer = servers.prepare_peer(args.peer_dir, work)
    ports = servers.Ports(args.idp_port, 0, args.ours_port)
    spec = servers.our_spec(peer, work, ports, args.workers, file_db=args.file_db)
    spec.fresh()
    cmd, env = servers.idp_command(peer, ports)
    idp = procs.start("idp", cmd, cwd=peer, env=env, log=work / "profile-idp.log")
    ours = None
    try:
        procs.wait_for_200(idp, ports.idp, "/.well-known/openid-configuration")
        ours = procs.start(spec.name, spec.cmd, cwd=spec.cwd, env=spec.env, log=work / "p.log")
        procs.wait_for_200(ours, spec.port, "/api/auth/guest/refresh", {"X-Requested-With": "x"})
        title, path, headers, _, with_cookies = SCENARIOS[args.scenario]
        cookies = work / "profile-cookies.txt"
        cookies.write_text("\n".join(load.login(spec.port) for _ in range(64)) + "\n")
        url = f"http://127.0.0.1:{spec.port}{path}"

        def wrk(duration: int) -> load.WrkResult:
            return load.wrk(
                url,
                headers=list(headers),
                duration=duration,
                connections=args.connections,
                cookies_file=cookies if with_cookies else None,
            )

        wrk(3)  # warm-up
        pids = procs.process_tree(ours.pid)
        target = pids[-1] if args.workers > 1 else ours.pid  # one worker
        raw = work / f"profile-{args.scenario}-{spec.name}.txt"
        spy = [args.py_spy, "record", "--format", "raw", "-o", str(raw), "-r", str(args.rate)]
        spy += ["-d", str(args.duration), "-p", str(target)]
        spy += {
            "gil": ["--gil", "--nonblocking"],
            "all": ["--nonblocking"],
            "native": ["--native"],
        }[args.mode]
        sampler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        cpu0 = procs.tree_cpu_seconds(pids)
        result = wrk(args.duration - 1)
        cpu = sum(procs.tree_cpu_seconds(pids).values()) - sum(cpu0.values())
        sampler.wait()
        print(
            f"{title} on {spec.name}: {result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms, "
            f"{1000 * cpu / max(result.requests, 1):.3f} ms CPU/request "
            f"(py-spy slows the server down a little); raw stacks: {raw}\n"
        )
        print(top_functions(raw, args.limit))
    finally:
        if ours is not None:
            procs.stop(ours)
        procs.stop(idp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
