"""app.observability.logs: lines leave through a bounded queue, so a log reader that stalls
costs dropped (and counted) lines, never a blocked request; text lines keep audit fields."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml

from app.observability import logs
from app.observability.logs import configure_logging, dropped_records, flush_logs
from app.observability.metrics import Metrics
from tests.support.oidc_provider import free_port
from tests.support.server import ROOT


class _StalledStream(io.StringIO):
    """A stream whose reader has stopped reading: every write waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def write(self, text: str) -> int:
        self.released.wait()
        return super().write(text)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logs._PIPELINE.stop()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_stalled_reader_never_blocks_the_logging_thread() -> None:
    stream = _StalledStream()
    configure_logging(json_logs=True, stream=stream, capacity=100)
    before = dropped_records()
    log = logging.getLogger("test.stall")

    done = threading.Event()

    def burst() -> None:
        for i in range(5_000):
            log.info("line %d", i)
        done.set()

    thread = threading.Thread(target=burst, daemon=True)
    thread.start()
    # Without the queue the first write blocks this burst for as long as the reader stalls.
    finished = done.wait(timeout=30)
    stream.released.set()
    assert finished
    # The writer holds one record and the queue 100: the rest were dropped, and counted.
    assert dropped_records() - before >= 5_000 - 100 - 1
    flush_logs()
    assert "line 0" in stream.getvalue()


def test_dropped_records_are_a_metric() -> None:
    logs.DROPPED.add()
    text = __import__("prometheus_client").generate_latest(Metrics(set()).registry).decode()
    assert f"auth_log_records_dropped_total {float(dropped_records())}" in text


def test_text_lines_keep_the_audit_fields_and_a_dash_outside_requests() -> None:
    stream = io.StringIO()
    configure_logging(json_logs=False, stream=stream)
    logging.getLogger("app.audit").info(
        "sign_in_failed", extra={"event": "sign_in_failed", "provider": "oidc", "reason": "x"}
    )
    flush_logs()
    line = stream.getvalue().strip()
    assert "[-] app.audit: sign_in_failed" in line
    assert line.endswith("event=sign_in_failed provider=oidc reason=x")


def test_json_lines_carry_no_colour_copies() -> None:
    stream = io.StringIO()
    configure_logging(json_logs=True, stream=stream)
    logging.getLogger("uvicorn.error").info(
        "Started", extra={"color_message": "\x1b[32mStarted\x1b[0m"}
    )
    flush_logs()
    record = json.loads(stream.getvalue())
    assert record["message"] == "Started"
    assert "color_message" not in record
    assert record["request_id"] == "-"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_logs_through_its_own_writer(tmp_path: Path) -> None:
    # gunicorn's workers are forked after logging was configured: the parent's writer
    # thread is not in the child.
    out = tmp_path / "child.log"
    script = f"""
import logging, os, sys
from app.observability.logs import configure_logging
configure_logging(json_logs=False, stream=open({str(out)!r}, "w"))
pid = os.fork()
if pid == 0:
    logging.getLogger("child").warning("from the child")
    sys.exit(0)  # atexit writes out what is queued
os.waitpid(pid, 0)
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=30)
    assert "from the child" in out.read_text()


def test_a_server_whose_stderr_nobody_reads_keeps_answering(tmp_path: Path) -> None:
    # The review's stall: stderr is a pipe that is never read. Each request logs an access
    # line; the pipe (64 KiB) fills after a few hundred of them.
    port = free_port()
    config = {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {"baseUrl": f"http://localhost:{port}", "listen": {"port": port}},
    }
    config_path = tmp_path / "app-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--config", str(config_path)]
        + ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        cwd=ROOT,
        env={**os.environ, "NODE_ENV": "development"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    threading.Event().wait(0.1)
            # Long request paths make long access lines: 2,000 of them are ~1 MiB of log.
            path = "/healthz?" + "x" * 400
            statuses = [client.get(path).status_code for _ in range(2_000)]
        assert statuses == [200] * 2_000
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_connexions_content_type_notice_is_not_logged() -> None:
    # connexion's warning on every request to /v1/token (form and JSON bodies).
    stream = io.StringIO()
    configure_logging(json_logs=True, stream=stream)
    connexion_log = logging.getLogger("connexion.operations.openapi3")
    connexion_log.warning("this operation accepts multiple content types, using %s", "json")
    connexion_log.warning("another warning")
    flush_logs()
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert lines == ["another warning"]


def test_outbound_requests_are_counted_not_logged() -> None:
    # httpx2 logs every request at INFO; /metrics counts them instead.
    stream = io.StringIO()
    configure_logging(json_logs=True, stream=stream)
    logging.getLogger("app").info("before")
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200))
    with httpx2.Client(transport=transport) as client:
        client.get("https://idp.example/token")
    flush_logs()
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert lines == ["before"]
