"""Fault runs against real server processes on loopback: what clients see, how long until
service is back. Every run is bounded (a few seconds of load) and stops by itself; the
whole script takes about four minutes. Prints a Markdown table (docs/operations.md,
"Behaviour under faults", holds the figures of one run).

    .venv/bin/python -m reliability.run [scenario ...]

Needs the test extras (``pip install -e '.[test]'``: httpx, pgserver for the database
faults). Load: a few threads, a new connection per request, as a load balancer's health
checks and browsers' refreshes arrive.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cli_server import SlowDiscovery  # noqa: E402
from tests.support.oidc_provider import free_port  # noqa: E402

REFRESH = "/api/auth/guest/refresh"
JWKS = "/api/auth/.well-known/jwks.json"
READY = "/readyz"
HEALTH = "/healthz"
START = "/api/auth/oidc/start?env=production&scope=openid"


@contextmanager
def slow_discovery(delay: float) -> Iterator[SlowDiscovery]:
    """The test suite's slow discovery endpoint, quiet when a client gives up on it."""
    with SlowDiscovery(delay) as slow:
        slow._server.handle_error = lambda *_: None  # type: ignore[method-assign]
        yield slow


@dataclass
class Sample:
    path: str
    began: float
    seconds: float
    outcome: str


@dataclass
class Load:
    """Threads requesting ``paths`` in turn until stopped; every request is a Sample."""

    base_url: str
    paths: list[str]
    threads: int = 4
    timeout: float = 15.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, args=(i,)) for i in range(self.threads)]

    def _run(self, index: int) -> None:
        limits = httpx2.Limits(max_keepalive_connections=0)
        with httpx2.Client(base_url=self.base_url, timeout=self.timeout, limits=limits) as client:
            turn = index
            while not self._stop.is_set():
                path = self.paths[turn % len(self.paths)]
                turn += 1
                began = time.monotonic()
                try:
                    outcome = str(client.get(path).status_code)
                except httpx2.HTTPError as exc:
                    outcome = type(exc).__name__
                with self._lock:
                    self.samples.append(Sample(path, began, time.monotonic() - began, outcome))
                time.sleep(0.01)

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)


@dataclass
class Result:
    fault: str
    seen: str
    recovery: str


def _summary(samples: list[Sample], fault_at: float, ok: Callable[[Sample], bool]) -> str:
    counts = Counter(s.outcome for s in samples)
    bad = [s for s in samples if not ok(s)]
    worst = max((s.seconds for s in samples), default=0.0)
    text = ", ".join(f"{n}× {o}" for o, n in counts.most_common())
    text += f"; slowest {worst:.2f} s"
    if bad:
        first, last = bad[0].began - fault_at, bad[-1].began + bad[-1].seconds - fault_at
        text += f"; failures from {first:+.1f} s to {last:+.1f} s"
    return text


def _ok(sample: Sample) -> bool:
    return sample.outcome == "200"


def _last_failure(samples: list[Sample], since: float, ok: Callable[[Sample], bool]) -> float:
    ends = [s.began + s.seconds for s in samples if not ok(s) and s.began >= since - 30]
    return max(ends, default=since) - since


# -- servers ----------------------------------------------------------------------------


def _config(
    *, metadata_url: str | None = None, database: dict[str, Any] | None = None
) -> dict[str, Any]:
    base = "http://localhost:PORT"  # server() fills in the port it chose
    providers: dict[str, Any] = {"guest": {"dangerouslyAllowOutsideDevelopment": True}}
    if metadata_url:
        providers["oidc"] = {
            "production": {"metadataUrl": metadata_url, "clientId": "c", "clientSecret": "s"}
        }
    backend: dict[str, Any] = {"baseUrl": base}
    if database:
        backend["database"] = database
    return {
        "app": {"baseUrl": base},
        "backend": backend,
        "auth": {
            "session": {"secret": "reliability-run-secret-of-32-or-more-chars"},
            "providers": providers,
        },
    }


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def server(
    workdir: Path,
    config: dict[str, Any],
    *args: str,
    stderr: int | None = None,
    prefix: list[str] | None = None,
) -> Iterator[Server]:
    port = free_port()
    text = yaml.safe_dump(config).replace("localhost:PORT", f"localhost:{port}")
    path = workdir / f"config-{port}.yaml"
    path.write_text(text)
    log = workdir / f"server-{port}.log"
    command = [*(prefix or []), sys.executable, "-m", "app", "serve", "--config", str(path)]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(workdir / f"data-{port}"),
    ]
    command += ["--log-format", "text", *args]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "NODE_ENV": "production"},
            stdout=out if stderr is None else stderr,
            stderr=out if stderr is None else stderr,
        )
    running = Server(proc, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}:\n{running.output}")
            try:
                if httpx2.get(f"{running.base_url}{HEALTH}", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(running.output)
            time.sleep(0.1)
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


# -- scenarios --------------------------------------------------------------------------


def log_reader_stall(workdir: Path) -> Result:
    """stdout/stderr go to a pipe nobody reads for 5 s (a stuck log shipper)."""
    reader, writer = os.pipe()
    with server(workdir, _config(), stderr=writer) as running:
        os.close(writer)
        drained = threading.Event()

        def drain() -> None:
            while os.read(reader, 65536):
                pass
            drained.set()

        with Load(running.base_url, [REFRESH, HEALTH]) as load:
            fault_at = time.monotonic()
            time.sleep(5)
            threading.Thread(target=drain, daemon=True).start()
            time.sleep(1)
    os.close(reader) if not drained.is_set() else None
    stalled = [s for s in load.samples if fault_at <= s.began < fault_at + 5]
    p50 = sorted(s.seconds for s in stalled)[len(stalled) // 2] if stalled else 0.0
    return Result(
        "Log reader stalls (stderr pipe unread 5 s)",
        _summary(load.samples, fault_at, _ok) + f"; p50 during the stall {p50 * 1000:.0f} ms",
        "none needed (log lines past the queue are dropped and counted)",
    )


@contextmanager
def postgres(workdir: Path) -> Iterator[Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    base = Path(tempfile.mkdtemp(prefix="auth-backend-reliability-pg-"))
    pg = pgserver.get_server(base / "data", cleanup_mode="delete")
    try:
        yield pg
    finally:
        pg.cleanup()


def _pg_config(pg: Any) -> dict[str, Any]:
    socket_dir = str(pg.get_postmaster_info().socket_dir)
    name = f"auth_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    return _config(
        database={
            "client": "pg",
            "connection": {"host": socket_dir, "user": "postgres", "database": name},
            "plugin": {"auth": {"connection": {"database": name}}},
        }
    )


def _db_fault(workdir: Path, pg: Any, label: str, *, freeze: bool) -> Result:
    from pgserver._commands import pg_ctl

    with server(workdir, _pg_config(pg)) as running:
        httpx2.get(f"{running.base_url}{REFRESH}", timeout=10)
        with Load(running.base_url, [REFRESH, JWKS, READY]) as load:
            time.sleep(1)
            postmaster = pg.get_pid()
            frozen = [postmaster, *_children(postmaster)] if freeze else []
            if freeze:
                for pid in frozen:
                    os.kill(pid, signal.SIGSTOP)
            else:
                pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pg.pgdata, user=pg.system_user)
            time.sleep(5)
            restored_at = time.monotonic()
            if freeze:
                for pid in frozen:
                    os.kill(pid, signal.SIGCONT)
            else:
                pg.ensure_postgres_running()
            restored = time.monotonic()
            time.sleep(4)
    by_path = []
    for path in (REFRESH, JWKS, READY):
        counts = Counter(s.outcome for s in load.samples if s.path == path)
        worst = max((s.seconds for s in load.samples if s.path == path), default=0.0)
        by_path.append(f"{path.rsplit('/', 1)[1]}: {dict(counts)} (slowest {worst:.2f} s)")
    # From when the database answers again (a restart takes seconds of its own).
    recovery = _last_failure(load.samples, restored, _ok)
    return Result(
        f"{label} (5 s)",
        "; ".join(by_path),
        f"{max(recovery, 0):.1f} s after the database is back"
        + ("" if freeze else f" (restart took {restored - restored_at:.1f} s)"),
    )


def database_down(workdir: Path) -> list[Result]:
    with postgres(workdir) as pg:
        return [
            _db_fault(workdir, pg, "Database down (PostgreSQL stopped)", freeze=False),
            _db_fault(workdir, pg, "Database frozen (PostgreSQL SIGSTOPped)", freeze=True),
        ]


def _booted(running: Server, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = _children(running.proc.pid)
        if len(workers) >= count and running.output.count("Application startup complete") >= count:
            return workers
        time.sleep(0.1)
    raise TimeoutError(running.output)


def _replaced(running: Server, gone: int, timeout: float = 30) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        workers = _children(running.proc.pid)
        if gone not in workers and len(workers) >= 2:
            return time.monotonic() - began
        time.sleep(0.05)
    return float("nan")


def instance_killed(workdir: Path) -> Result:
    with server(workdir, _config(), "--workers", "2") as running:
        victim = _booted(running, 2)[0]
        with Load(running.base_url, [REFRESH, HEALTH]) as load:
            time.sleep(1)
            fault_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            replaced = _replaced(running, victim)
            time.sleep(2)
    return Result(
        "Instance killed (kill -9 of one of 2 workers)",
        _summary(load.samples, fault_at, _ok),
        f"worker replaced in {replaced:.1f} s; the other served throughout",
    )


def identity_provider(workdir: Path) -> list[Result]:
    results = []
    closed = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
    with server(workdir, _config(metadata_url=closed)) as running:
        with Load(running.base_url, [START], threads=2) as load:
            time.sleep(3)
    results.append(
        Result(
            "Identity provider down (connection refused)",
            "/start: " + _summary(load.samples, load.samples[0].began, lambda s: False),
            "at once when it is back (nothing cached while it fails)",
        )
    )
    with slow_discovery(12.0) as slow, server(workdir, _config(metadata_url=slow.url)) as running:
        with Load(running.base_url, [START], threads=2, timeout=20) as load:
            time.sleep(11)
    results.append(
        Result(
            "Identity provider slow (answers after 12 s)",
            "/start: " + _summary(load.samples, load.samples[0].began, lambda s: False),
            "at once when it answers within the timeout",
        )
    )
    return results


def slow_clients(workdir: Path) -> Result:
    """400 connections that never finish a request, with 320 descriptors."""
    with server(
        workdir, _config(), "--head-timeout", "3", prefix=["prlimit", "--nofile=256:320"]
    ) as running:
        with Load(running.base_url, [HEALTH, REFRESH]) as load:
            time.sleep(0.5)
            fault_at = time.monotonic()
            flood = []
            for index in range(400):
                sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
                if index % 2:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                flood.append(sock)
            time.sleep(5)
            for sock in flood:
                sock.close()
        refused = running.output.count("refused ")
    return Result(
        "Slow clients (400 unfinished requests, 320 descriptors, --head-timeout 3)",
        _summary(load.samples, fault_at, _ok) + f"; {refused} refusal log line(s)",
        f"{_last_failure(load.samples, fault_at, _ok):.1f} s after the flood began "
        "(the head timeout closes them)",
    )


def worker_stuck(workdir: Path) -> Result:
    with server(workdir, _config(), "--workers", "2", "--worker-timeout", "5") as running:
        victim = _booted(running, 2)[0]
        with Load(running.base_url, [HEALTH, REFRESH], timeout=10) as load:
            time.sleep(1)
            fault_at = time.monotonic()
            os.kill(victim, signal.SIGSTOP)
            replaced = _replaced(running, victim)
            time.sleep(2)
    return Result(
        "Worker stuck (one of 2 SIGSTOPped, --worker-timeout 5)",
        _summary(load.samples, fault_at, _ok),
        f"worker killed and replaced {replaced:.1f} s after it stopped",
    )


def sigterm_under_load(workdir: Path) -> Result:
    with (
        SlowDiscovery(4.0) as slow,
        server(workdir, _config(metadata_url=slow.url), "--graceful-timeout", "1") as running,
    ):
        with Load(running.base_url, [HEALTH, REFRESH, START], threads=6) as load:
            time.sleep(1.5)
            fault_at = time.monotonic()
            running.proc.send_signal(signal.SIGTERM)
            code = running.proc.wait(timeout=20)
            exited = time.monotonic() - fault_at
            time.sleep(0.5)
        in_flight = [s for s in load.samples if s.began < fault_at < s.began + s.seconds]
        cut = Counter(s.outcome for s in in_flight)
        output = running.output
    return Result(
        "SIGTERM under load (--graceful-timeout 1, /start waiting on a 4 s IdP)",
        f"in flight at the signal: {dict(cut)}; after it: connection refused; "
        f"{output.count('cut at the graceful shutdown deadline')} cut line(s), "
        f"{output.count('Traceback')} tracebacks",
        f"exit {code} after {exited:.1f} s",
    )


SCENARIOS: dict[str, Callable[[Path], Result | list[Result]]] = {
    "log": log_reader_stall,
    "database": database_down,
    "killed": instance_killed,
    "idp": identity_provider,
    "slow-clients": slow_clients,
    "worker-stuck": worker_stuck,
    "sigterm": sigterm_under_load,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", choices=[[], *SCENARIOS], default=[])
    names = parser.parse_args().scenarios or list(SCENARIOS)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="auth-backend-reliability-") as tmp:
        for name in names:
            began = time.monotonic()
            outcome = SCENARIOS[name](Path(tmp))
            found = outcome if isinstance(outcome, list) else [outcome]
            results.extend(found)
            for result in found:
                print(f"[{name} {time.monotonic() - began:.0f} s] {result}", file=sys.stderr)
    print("| Fault | What clients see | Recovery |")
    print("|---|---|---|")
    for result in results:
        print(f"| {result.fault} | {result.seen} | {result.recovery} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
