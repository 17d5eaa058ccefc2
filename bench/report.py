"""Results: medians per scenario, the table, ratios against Backstage, PASS/MISS targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from procs import RssSampler

MIB = 1024
CPU = "cpu_ms_per_request"


@dataclass(frozen=True)
class Sample:
    """One measured run of one scenario on one server."""

    scenario: str
    requests: int
    wall_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float  # utime + stime, summed over the server's process tree
    idp_cpu_s: float
    upstream_calls: int  # the mock IdP's /token calls during the run
    other_cpu_s: float  # machine busy time minus server, IdP and load generator: noise
    bad: int  # unexpected statuses and socket errors

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / max(self.requests, 1)


@dataclass
class ServerResult:
    name: str
    label: str
    workers: int
    cold_starts_s: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    idle_rss_kib: int = 0
    # Per scenario: peak of the summed RSS of the process tree, and the largest worker.
    rss_total_kib: dict[str, int] = field(default_factory=dict)
    rss_worker_kib: dict[str, int] = field(default_factory=dict)

    def runs(self, scenario: str) -> list[Sample]:
        return [s for s in self.samples if s.scenario == scenario]

    def median(self, scenario: str, attr: str) -> float:
        values = [float(getattr(s, attr)) for s in self.runs(scenario)]
        return statistics.median(values) if values else float("nan")

    def record_rss(self, scenario: str, rss: RssSampler, *, root: int) -> None:
        """Keep the scenario's peaks: the tree's sum, and its largest worker (with several
        workers, any process but the master; with one, the whole tree)."""
        if self.workers > 1:
            worker = max((kib for pid, kib in rss.peak_by_pid.items() if pid != root), default=0)
        else:
            worker = rss.peak_total
        self.rss_total_kib[scenario] = max(self.rss_total_kib.get(scenario, 0), rss.peak_total)
        self.rss_worker_kib[scenario] = max(self.rss_worker_kib.get(scenario, 0), worker)

    @property
    def peak_rss_worker_kib(self) -> int:
        return max(self.rss_worker_kib.values(), default=0)

    @property
    def peak_rss_total_kib(self) -> int:
        return max(self.rss_total_kib.values(), default=0)

    @property
    def cold_start_s(self) -> float:
        return statistics.median(self.cold_starts_s) if self.cold_starts_s else float("nan")


def _f(value: float, digits: int = 1) -> str:
    return "–" if value != value else f"{value:,.{digits}f}"


def table(results: list[ServerResult], scenarios: dict[str, str]) -> str:
    lines = [
        "| scenario | server | req/s | p50 ms | p99 ms | CPU ms/req | peak RSS MiB "
        "(sum / per worker) | IdP /token per req | IdP CPU ms/req | noise (other cores) | bad |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, title in scenarios.items():
        for r in results:
            runs = r.runs(scenario)
            if not runs:
                continue
            requests = r.median(scenario, "requests")
            rss = f"{r.rss_total_kib[scenario] / MIB:.0f}"
            if r.workers > 1:
                rss += f" / {r.rss_worker_kib[scenario] / MIB:.0f}"
            upstream = statistics.median(s.upstream_calls / max(s.requests, 1) for s in runs)
            idp = statistics.median(1000 * s.idp_cpu_s / max(s.requests, 1) for s in runs)
            noise = statistics.median(s.other_cpu_s / s.wall_s for s in runs)
            lines.append(
                f"| {title} | {r.name} | {_f(r.median(scenario, 'rps'), 0)} | "
                f"{_f(r.median(scenario, 'p50_ms'))} | {_f(r.median(scenario, 'p99_ms'))} | "
                f"{_f(r.median(scenario, 'cpu_ms_per_request'), 3)} | {rss} | "
                f"{_f(upstream, 2)} | {_f(idp, 2)} | {_f(noise, 2)} | "
                f"{sum(s.bad for s in runs)} of {int(requests * len(runs))} |"
            )
    return "\n".join(lines)


def summary(results: list[ServerResult]) -> str:
    lines = [
        "| server | runs as | cold start s (median; all) | idle RSS MiB | peak RSS MiB "
        "(sum / per worker) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        starts = ", ".join(f"{s:.2f}" for s in r.cold_starts_s)
        lines.append(
            f"| {r.name} | {r.label} | {_f(r.cold_start_s, 2)} ({starts}) | "
            f"{r.idle_rss_kib / MIB:.0f} | {r.peak_rss_total_kib / MIB:.0f} / "
            f"{r.peak_rss_worker_kib / MIB:.0f} |"
        )
    return "\n".join(lines)


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("nan")


def ratios(base: ServerResult, ours: list[ServerResult], scenarios: dict[str, str]) -> str:
    lines = [
        "| scenario | server | CPU/req ratio | throughput ratio | p99 ratio | RSS/worker ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario, title in scenarios.items():
        for r in ours:
            if not r.runs(scenario) or not base.runs(scenario):
                continue
            cpu = _ratio(
                r.median(scenario, "cpu_ms_per_request"),
                base.median(scenario, "cpu_ms_per_request"),
            )
            rps = _ratio(r.median(scenario, "rps"), base.median(scenario, "rps"))
            p99 = _ratio(r.median(scenario, "p99_ms"), base.median(scenario, "p99_ms"))
            rss = _ratio(r.rss_worker_kib[scenario], base.rss_worker_kib[scenario])
            lines.append(
                f"| {title} | {r.name} | {_f(cpu, 2)} | {_f(rps, 2)} | {_f(p99, 2)} | "
                f"{_f(rss, 2)} |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class Verdict:
    target: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"- **{'PASS' if self.passed else 'MISS'}** {self.target}: {self.detail}"


REFRESH_SCENARIOS = ("oidc_refresh", "guest_refresh")
WRK_SCENARIOS = ("oidc_start", "oidc_refresh", "guest_refresh", "jwks")
TARGET_SCENARIOS = (*WRK_SCENARIOS, "burst20")  # issue 8's; "health" is only a reference


def targets(
    base: ServerResult,
    one: ServerResult | None,
    many: ServerResult | None,
    scenarios: dict[str, str],
) -> list[Verdict]:
    """Issue 8's targets. CPU per request: ours with one worker (like for like with one Node
    process); throughput: ours one worker per core vs Backstage; p99 and RSS: both."""
    out: list[Verdict] = []
    scenarios = {s: t for s, t in scenarios.items() if s in TARGET_SCENARIOS}

    def have(r: ServerResult | None, s: str) -> bool:
        return r is not None and bool(r.runs(s)) and bool(base.runs(s))

    if one is not None:
        for s, title in scenarios.items():
            if not have(one, s):
                continue
            ratio = _ratio(
                one.median(s, "cpu_ms_per_request"), base.median(s, "cpu_ms_per_request")
            )
            limit = 0.5 if s in REFRESH_SCENARIOS else 1.0
            out.append(
                Verdict(
                    f"CPU/request {title} ≤ {limit:g}× Backstage ({one.name})",
                    ratio < limit if limit == 1.0 else ratio <= limit,
                    f"{one.median(s, 'cpu_ms_per_request'):.3f} vs "
                    f"{base.median(s, 'cpu_ms_per_request'):.3f} ms = {ratio:.2f}×",
                )
            )
    if many is not None:
        for s in WRK_SCENARIOS:
            if not have(many, s):
                continue
            ratio = _ratio(many.median(s, "rps"), base.median(s, "rps"))
            out.append(
                Verdict(
                    f"throughput {scenarios[s]} ≥ 2× Backstage ({many.name})",
                    ratio >= 2.0,
                    f"{many.median(s, 'rps'):.0f} vs {base.median(s, 'rps'):.0f} req/s "
                    f"= {ratio:.2f}×",
                )
            )
    for r in (one, many):
        if r is None:
            continue
        for s, title in scenarios.items():
            if not have(r, s):
                continue
            ours_p99, theirs = r.median(s, "p99_ms"), base.median(s, "p99_ms")
            out.append(
                Verdict(
                    f"p99 {title} no worse than Backstage ({r.name})",
                    ours_p99 <= theirs,
                    f"{ours_p99:.1f} vs {theirs:.1f} ms",
                )
            )
        ratio = _ratio(r.peak_rss_worker_kib, base.peak_rss_worker_kib)
        out.append(
            Verdict(
                f"peak RSS per worker ≤ 1/3 of Backstage ({r.name})",
                ratio <= 1 / 3,
                f"{r.peak_rss_worker_kib / MIB:.0f} vs {base.peak_rss_worker_kib / MIB:.0f} MiB"
                f" = {ratio:.2f}×",
            )
        )
        out.append(
            Verdict(
                f"cold start < 1.5 s ({r.name})",
                r.cold_start_s < 1.5,
                f"median {r.cold_start_s:.2f} s of {len(r.cold_starts_s)}",
            )
        )
    return out
