"""``serve --workers 2 --worker-timeout N``: a stuck worker (here: stopped) is killed and
replaced within about N seconds, not gunicorn's 30; the other worker serves meanwhile."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx2

from tests.server.test_workers import _alive, _booted_workers, _config
from tests.support.cli_server import CliServer, SlowDiscovery
from tests.support.oidc_provider import free_port

WORKER_TIMEOUT = 3


def test_a_stuck_worker_is_replaced_within_the_worker_timeout(tmp_path: Path) -> None:
    port = free_port()
    with SlowDiscovery(0.1) as discovery:
        server = CliServer(
            _config(port, discovery.url),
            tmp_path,
            port=port,
            extra_args=["--workers", "2", "--worker-timeout", str(WORKER_TIMEOUT)],
        )
        with server:
            victim, survivor = _booted_workers(server, 2)
            stopped = time.monotonic()
            os.kill(victim, signal.SIGSTOP)
            try:
                deadline = stopped + WORKER_TIMEOUT + 8
                while _alive(victim):
                    assert time.monotonic() < deadline, server.output
                    time.sleep(0.1)
                replaced_after = time.monotonic() - stopped
                while True:
                    booted = re.findall(r"Booting worker with pid: (\d+)", server.output)
                    fresh = [int(p) for p in booted if int(p) not in (victim, survivor)]
                    if fresh and _alive(fresh[0]):
                        break
                    assert time.monotonic() < deadline, server.output
                    time.sleep(0.1)
            finally:
                if _alive(victim):
                    os.kill(victim, signal.SIGKILL)
            assert replaced_after < WORKER_TIMEOUT + 4, replaced_after
            assert f"WORKER TIMEOUT (pid:{victim})" in server.output
            assert _alive(survivor)
            assert httpx2.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
