"""``/metrics`` under ``serve --workers 2`` adds up every worker's values (prometheus-client's
multiprocess mode): whichever worker answers a scrape, a counter never goes down, and it
counts the requests every worker served, including one that was killed; the run's metric
directory is removed at the end."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx2

from tests.server.test_workers import _booted_workers, _children, _wait_listening, _workers_server
from tests.support.cli_server import CliServer, SlowDiscovery

JWKS_SERIES = re.compile(
    r'^auth_requests_total\{method="GET",provider="-",route="/.well-known/jwks.json",'
    r'status="200"\} ([0-9.e+]+)$',
    re.MULTILINE,
)


def _scrape(server: CliServer) -> tuple[float, str]:
    # A connection of its own each time: the kernel picks the worker.
    with httpx2.Client(base_url=server.base_url, timeout=10) as client:
        body = client.get("/metrics").text
    found = JWKS_SERIES.search(body)
    return (float(found.group(1)) if found else 0.0), body


def _jwks(server: CliServer, times: int) -> None:
    for _ in range(times):
        with httpx2.Client(base_url=server.base_url, timeout=10) as client:
            assert client.get("/api/auth/.well-known/jwks.json").status_code == 200


def _wait_replaced(server: CliServer, victim: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = _children(server.pid)
        if len(now) == 2 and victim not in now:
            _wait_listening(server, now)
            return
        time.sleep(0.1)
    raise AssertionError(server.output)


def test_scrapes_add_up_across_workers_and_never_go_down(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    with SlowDiscovery(0.1) as discovery:
        server = _workers_server(tmp_path, discovery.url, env={"TMPDIR": str(temp)})
        try:
            server.start()
            workers = _booted_workers(server, 2)
            _wait_listening(server, workers)
            (directory,) = temp.glob("auth-backend-metrics-*")
            served = 0
            values: list[float] = []
            for round_ in range(6):
                if round_ == 3:
                    # A killed worker's counts stay in the totals.
                    victim = _children(server.pid)[0]
                    os.kill(victim, signal.SIGKILL)
                    _wait_replaced(server, victim)
                _jwks(server, 8)
                served += 8
                value, body = _scrape(server)
                values.append(value)
                # Every request counted, whichever worker served it and answers the scrape.
                assert value == served, (values, body)
                assert "auth_log_records_dropped_total 0.0" in body, body
            assert values == sorted(values), values
            # Both workers wrote their values (one file per process and metric type).
            assert len({p.name.rsplit("_", 1)[1] for p in directory.glob("counter_*.db")}) >= 2
        finally:
            server.stop()
    assert not directory.exists()
