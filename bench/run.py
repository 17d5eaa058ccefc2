"""Benchmark our server against the Backstage peer (issue 8). One command:

    .venv/bin/python bench/run.py [--peer-dir /work/peer/backstage] [--runs 3] [--duration 10]

Prepares the peer (copies /work/shared/peers/backstage to --work-dir and runs its
install.sh, unless --peer-dir names an installed copy), starts its mock IdP once, measures
the cold start of each server (process start to the first 200 of /api/auth/guest/refresh),
then runs Backstage, ours with one worker and ours with one worker per core side by side
(each on its own port, idle while another is measured) and, round after round, each
scenario on each server with wrk on loopback. Stops everything and prints the tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import load
import procs
import report
import servers

XRW = load.XRW
# name -> (title, path, headers, expected status, sends the login cookies)
SCENARIOS: dict[str, tuple[str, str, tuple[str, ...], int, bool]] = {
    "oidc_start": ("/start (oidc)", load.start_path(), (), 302, False),
    "oidc_refresh": ("/refresh (oidc, IdP call)", load.refresh_path(), (XRW,), 200, True),
    "guest_refresh": ("/refresh (guest)", "/api/auth/guest/refresh", (XRW,), 200, False),
    "jwks": ("/.well-known/jwks.json", "/api/auth/.well-known/jwks.json", (), 200, False),
    "burst20": ("20 concurrent refreshes, 1 session", load.refresh_path(), (XRW,), 200, True),
    # Not in the default set: the framework's floor (no auth work at all).
    "health": ("/.backstage/health/v1/liveness", "/.backstage/health/v1/liveness", (), 200, False),
}
DEFAULT_SCENARIOS = [s for s in SCENARIOS if s != "health"]
GUEST = "/api/auth/guest/refresh"


@dataclass(frozen=True)
class Load:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int  # unexpected statuses and socket errors


class Bench:
    """Runs one scenario on one server and accounts for it."""

    def __init__(self, args: argparse.Namespace, idp_port: int) -> None:
        self.args = args
        self.idp_port = idp_port

    def _load(
        self,
        scenario: str,
        port: int,
        cookies_file: Path,
        *,
        warmup: bool,
        measuring: Callable[[], None],
    ) -> Load:
        """Warm up (first round only), wait for a quiet machine, call ``measuring``, then
        generate the measured load."""
        args = self.args
        _, path, headers, expect, with_cookies = SCENARIOS[scenario]
        if scenario == "burst20":
            one_cookie = cookies_file.read_text().splitlines()[0]
            hdrs = [*headers, f"Cookie: {one_cookie}"]
            if warmup:
                load.burst(port, path, hdrs, size=20, batches=5)
            procs.wait_for_quiet(args.quiet)
            measuring()
            lat = load.burst(port, path, hdrs, size=20, batches=args.burst_batches)
            p50, p99 = _quantiles(lat)
            return Load(20 * len(lat), 20 * len(lat) / sum(lat), 1000 * p50, 1000 * p99, 0)

        def wrk(duration: float) -> load.WrkResult:
            return load.wrk(
                f"http://127.0.0.1:{port}{path}",
                headers=list(headers),
                duration=duration,
                connections=args.connections,
                cookies_file=cookies_file if with_cookies else None,
            )

        if warmup:
            wrk(args.warmup)
            time.sleep(1)
        procs.wait_for_quiet(args.quiet)
        measuring()
        w = wrk(args.duration)
        unexpected = sum(n for status, n in w.statuses.items() if int(status) != expect)
        return Load(w.requests, w.rps, w.p50_ms, w.p99_ms, unexpected + w.errors)

    def measure(
        self,
        spec: servers.ServerSpec,
        server: procs.Service,
        result: report.ServerResult,
        scenario: str,
        cookies_file: Path,
        idp: procs.Service,
        *,
        warmup: bool,
    ) -> report.Sample:
        tree = procs.process_tree(server.pid)
        marks: dict[str, float] = {}
        counts0: dict[str, int] = {}
        cpu0: dict[int, float] = {}

        def measuring() -> None:
            cpu0.update(procs.tree_cpu_seconds(tree))
            counts0.update(load.idp_counts(self.idp_port))
            t = os.times()
            marks.update(
                idp=procs.cpu_seconds(idp.pid),
                busy=procs.machine_busy_seconds(),
                loadgen=t[0] + t[1] + t[2] + t[3],
                wall=time.perf_counter(),
            )

        with procs.RssSampler(server.pid) as rss:
            done = self._load(scenario, spec.port, cookies_file, warmup=warmup, measuring=measuring)
        wall = time.perf_counter() - marks["wall"]
        cpu1 = procs.tree_cpu_seconds(tree)
        server_cpu = sum(cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0)
        idp_cpu = procs.cpu_seconds(idp.pid) - marks["idp"]
        upstream = load.idp_counts(self.idp_port)["token"] - counts0["token"]
        t = os.times()
        loadgen = t[0] + t[1] + t[2] + t[3] - marks["loadgen"]  # us, and wrk once reaped
        other = procs.machine_busy_seconds() - marks["busy"] - server_cpu - idp_cpu - loadgen
        sample = report.Sample(
            scenario,
            done.requests,
            wall,
            done.rps,
            done.p50_ms,
            done.p99_ms,
            server_cpu,
            idp_cpu,
            upstream,
            other,
            done.bad,
        )
        result.record_rss(scenario, rss, root=server.pid)
        print(
            f"  {result.name:10} {scenario:14} {done.rps:8.0f} req/s  p50 {done.p50_ms:7.1f}"
            f"  p99 {done.p99_ms:7.1f} ms  CPU {sample.cpu_ms_per_request:.3f} ms/req"
            f"  upstream {upstream}/{done.requests}  RSS {rss.peak_total / 1024:.0f} MiB"
            f"  noise {other / wall:.2f} cores" + (f"  BAD {done.bad}" if done.bad else ""),
            flush=True,
        )
        return sample


def _quantiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    if len(ordered) < 2:
        return ordered[0], ordered[0]
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return statistics.median(ordered), q[98]


def cold_starts(spec: servers.ServerSpec, count: int, log: Path) -> list[float]:
    times = []
    for _ in range(count):
        spec.fresh()
        svc = procs.start(spec.name, spec.cmd, cwd=spec.cwd, env=spec.env, log=log)
        try:
            times.append(procs.wait_for_200(svc, spec.port, GUEST, {"X-Requested-With": "x"}))
        finally:
            procs.stop(svc)
        time.sleep(0.5)
    return times


def machine() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": f"{info.get('Model name', '?')}, {info.get('CPU(s)', '?')} vCPU "
        f"({info.get('Hypervisor vendor', 'bare metal')})",
        "memory": f"{int(mem) // 1024 // 1024} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "wrk": wrk.splitlines()[0] if wrk else "?",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer-dir", type=Path, help="an installed copy of the Backstage peer")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/auth-backend-bench"))
    ap.add_argument("--runs", type=int, default=3, help="measured runs per scenario and server")
    ap.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured wrk first")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--sessions", type=int, default=64, help="logins rotated by oidc_refresh")
    ap.add_argument("--burst-batches", type=int, default=40)
    ap.add_argument("--cold-starts", type=int, default=5)
    ap.add_argument(
        "--servers",
        default="backstage,ours-1w,ours-Nw",
        help="of backstage, ours-1w, ours-Nw (one worker per core), ours-1w-file",
    )
    ap.add_argument(
        "--quiet",
        type=float,
        default=30,
        help="wait up to this many seconds for other processes to leave the CPU before a run",
    )
    ap.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"of {', '.join(SCENARIOS)}",
    )
    ap.add_argument("--idp-port", type=int, default=18080)
    ap.add_argument("--backstage-port", type=int, default=17007)
    ap.add_argument("--ours-port", type=int, default=17010, help="N workers use this + 1")
    ap.add_argument(
        "--install",
        choices=("shipped", "dev"),
        default="shipped",
        help="our server from a venv with the project installed as shipped (the wheel, "
        "runtime dependencies; <work-dir>/venv-shipped) or from this development venv",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/run.py needs wrk, the load generator (Debian: apt-get install wrk)")

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = work / "logs" / stamp
    peer = servers.prepare_peer(args.peer_dir, work)
    ports = servers.Ports(args.idp_port, args.backstage_port, args.ours_port)
    for port in (ports.idp, ports.backstage, ports.ours, ports.ours + 1, ports.ours + 2):
        if not procs.port_is_free(port):
            raise SystemExit(f"port {port} is in use; pick others with --*-port")

    venv_bin = servers.shipped_venv(work) if args.install == "shipped" else servers.VENV_BIN
    specs: list[servers.ServerSpec] = []
    for name in args.servers.split(","):
        if name == "backstage":
            specs.append(servers.backstage_spec(peer, work, ports))
        elif name == "ours-1w":
            specs.append(servers.our_spec(peer, work, ports, 1, venv_bin=venv_bin))
        elif name == "ours-Nw":
            specs.append(servers.our_spec(peer, work, ports, args.workers, venv_bin=venv_bin))
        elif name == "ours-1w-file":
            specs.append(servers.our_spec(peer, work, ports, 1, file_db=True, venv_bin=venv_bin))
        else:
            raise SystemExit(f"unknown server {name}")
    scenarios = args.scenarios.split(",")
    info = machine()
    print("machine:", ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)

    cmd, env = servers.idp_command(peer, ports)
    idp = procs.start("idp", cmd, cwd=peer, env=env, log=logs / "idp.log")
    running: dict[str, procs.Service] = {}
    results = {s.name: report.ServerResult(s.name, s.label, s.workers) for s in specs}
    cookie_files: dict[str, Path] = {}
    try:
        procs.wait_for_200(idp, ports.idp, "/.well-known/openid-configuration")
        for spec in specs:
            print(f"cold start {spec.name}: {' '.join(spec.cmd)}", flush=True)
            times = cold_starts(spec, args.cold_starts, logs / f"{spec.name}.log")
            results[spec.name].cold_starts_s = times
            print(f"  {', '.join(f'{t:.2f}' for t in times)} s", flush=True)
        for spec in specs:
            spec.fresh()
            svc = procs.start(
                spec.name, spec.cmd, cwd=spec.cwd, env=spec.env, log=logs / f"{spec.name}.log"
            )
            running[spec.name] = svc
            procs.wait_for_200(svc, spec.port, GUEST, {"X-Requested-With": "x"})
            if spec.workers > 1:
                time.sleep(3)  # the first 200 came from one worker: let the others boot too
            cookies = [load.login(spec.port) for _ in range(args.sessions)]
            cookie_files[spec.name] = work / f"cookies-{spec.name}.txt"
            cookie_files[spec.name].write_text("\n".join(cookies) + "\n")
            time.sleep(1)
            result = results[spec.name]
            result.idle_rss_kib = sum(procs.rss_kib(p) for p in procs.process_tree(svc.pid))
        bench = Bench(args, ports.idp)
        for rnd in range(args.runs):
            print(f"round {rnd + 1}/{args.runs}", flush=True)
            for scenario in scenarios:
                for spec in specs:
                    sample = bench.measure(
                        spec,
                        running[spec.name],
                        results[spec.name],
                        scenario,
                        cookie_files[spec.name],
                        idp,
                        warmup=rnd == 0,
                    )
                    results[spec.name].samples.append(sample)
                    time.sleep(1)
    finally:
        for svc in running.values():
            procs.stop(svc)
        procs.stop(idp)

    titles = {s: SCENARIOS[s][0] for s in scenarios}
    ordered = [results[s.name] for s in specs]
    base = results.get("backstage")
    ours = [r for r in ordered if r.name != "backstage"]
    one = next((r for r in ours if r.workers == 1), None)
    many = next((r for r in ours if r.workers > 1), None)
    out = [
        f"## Results {stamp}",
        "",
        "machine: " + "; ".join(f"{k} {v}" for k, v in info.items()),
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s, {args.warmup:g} s warm-up, "
        f"{args.runs} rounds; medians of the rounds; burst: {args.burst_batches} batches of 20",
        "",
        report.summary(ordered),
        "",
        report.table(ordered, titles),
    ]
    if base is not None and ours:
        out += ["", report.ratios(base, ours, titles), ""]
        out += [v.line() for v in report.targets(base, one, many, titles)]
    text = "\n".join(out)
    print("\n" + text)
    payload = {
        "stamp": stamp,
        "machine": info,
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": [asdict(r) for r in ordered],
    }
    dest = args.json or work / f"results-{stamp}.json"
    dest.write_text(json.dumps(payload, indent=2) + "\n")
    (work / f"results-{stamp}.md").write_text(text + "\n")
    print(f"\nsaved {dest} and {work / f'results-{stamp}.md'}; logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
