"""Processes: start and stop them, wait for HTTP, read CPU time and RSS from /proc."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # Fields after "(comm)"; comm may contain spaces and parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent outside idle and iowait."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def wait_for_quiet(limit: float, threshold: float = 0.3, window: float = 0.5) -> float:
    """Wait (at most ``limit`` s) until the machine is busy less than ``threshold`` cores
    over ``window`` s (our servers are idle between runs: busy means someone else).
    Returns the busy cores of the last window."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - before) / window
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn's master and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid)
        except OSError:
            pass
    return out


@dataclass
class RssSampler:
    """Samples the RSS of a process tree every ``interval`` seconds in a thread."""

    root: int
    interval: float = 0.2
    peak_by_pid: dict[int, int] = field(default_factory=dict)
    peak_total: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        total = 0
        for pid in process_tree(self.root):
            try:
                rss = rss_kib(pid)
            except OSError:
                continue
            total += rss
            self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), rss)
        self.peak_total = max(self.peak_total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


@dataclass
class Service:
    """A process we started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started_at: float  # time.perf_counter() just before the process was created

    @property
    def pid(self) -> int:
        return self.popen.pid


def start(
    name: str, cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> Service:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        started = time.perf_counter()
        popen = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    return Service(name, popen, log, started)


def stop(service: Service, timeout: float = 15.0) -> None:
    """SIGTERM the process we started (uvicorn's master stops its workers), then SIGKILL
    whatever of its tree is left, by pid."""
    if service.popen.poll() is not None:
        return
    tree = process_tree(service.pid)
    service.popen.send_signal(signal.SIGTERM)
    try:
        service.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        service.popen.kill()
        service.popen.wait()
    for pid in tree[1:]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def http_status(
    port: int, path: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0
) -> int | None:
    """Status of one GET to 127.0.0.1:port, or None when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def wait_for_200(
    service: Service,
    port: int,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 90.0,
    poll: float = 0.01,
) -> float:
    """Seconds from process creation to the first 200 on ``path``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if service.popen.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.popen.returncode}; see {service.log}"
            )
        if http_status(port, path, headers) == 200:
            return time.perf_counter() - service.started_at
        time.sleep(poll)
    raise TimeoutError(
        f"{service.name}: no 200 from :{port}{path} in {timeout}s; see {service.log}"
    )


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        # As the servers bind: connections of a previous run in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
