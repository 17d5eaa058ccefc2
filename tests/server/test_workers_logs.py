"""``serve --workers 2 --log-format json``: every line on stderr is JSON, gunicorn's own
(the master's "Booting worker", the signal it handles) included."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.server.test_workers import _workers_server
from tests.support.cli_server import SlowDiscovery


def test_gunicorn_lines_are_json_too(tmp_path: Path) -> None:
    with SlowDiscovery(0.1) as discovery:
        server = _workers_server(tmp_path, discovery.url, "--log-format", "json")
        try:
            server.start()
            deadline = time.monotonic() + 30
            while server.output.count("Application startup complete") < 2:
                assert time.monotonic() < deadline, server.output
                time.sleep(0.1)
        finally:
            # SIGTERM: the master logs the signal and the workers' exits.
            server.stop()
    lines = [line for line in server.output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    messages = [r["message"] for r in records if r.get("name") == "gunicorn.error"]
    assert sum("Booting worker" in m for m in messages) >= 2, lines
    assert any("Handling signal: term" in m for m in messages), lines
    assert all("request_id" in r for r in records), lines
