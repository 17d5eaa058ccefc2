"""Operations: health, readiness, metrics, request ids, audit events, redacted access logs."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.observability.logs import RedactQuery
from tests.fakes.app_factory import BACKEND_BASE_URL, registry_app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(registry_app(), base_url=BACKEND_BASE_URL) as c:
        yield c


def test_liveness_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok", "checks": {"keyStore": "ok"}}
    assert client.get("/.backstage/health/v1/readiness").json() == {"status": "ok"}


def test_metrics_count_requests_by_provider_route_and_status(client: TestClient) -> None:
    client.get("/api/auth/guest/refresh")
    client.get(
        "/api/auth/oauth2/refresh?env=development", headers={"X-Requested-With": "XMLHttpRequest"}
    )
    client.get("/api/auth/nope/start")
    text = client.get("/metrics").text
    assert (
        'auth_requests_total{method="GET",provider="guest",route="/refresh",status="200"}' in text
    )
    assert (
        'auth_requests_total{method="GET",provider="oauth2",route="/refresh",status="401"}' in text
    )
    assert 'auth_requests_total{method="GET",provider="unknown",route="other",status="404"}' in text
    assert 'auth_events_total{event="refresh_failed",provider="oauth2"}' in text
    assert "auth_signing_key_rotations_total 1.0" in text
    assert "auth_request_duration_seconds_bucket" in text


def test_metric_labels_from_the_request_are_bounded(client: TestClient) -> None:
    # Paths and methods come from clients: unknown ones must not grow new series.
    for i in range(3):
        client.get(f"/api/auth/v1/random-{i}")
        client.request(f"BREW{i}", "/api/auth/guest/refresh")
    client.get("/api/auth/.well-known/jwks.json")
    text = client.get("/metrics").text
    assert "random-" not in text and "BREW" not in text
    assert 'auth_requests_total{method="GET",provider="-",route="other",status="404"} 3.0' in text
    assert 'method="other",provider="guest",route="/refresh"' in text
    assert (
        'auth_requests_total{method="GET",provider="-",route="/.well-known/jwks.json",status="200"}'
        in text
    )


def test_upstream_failures_are_counted(client: TestClient) -> None:
    # The oauth2 provider's token URL is a closed port: the callback's code exchange fails.
    start = client.get("/api/auth/oauth2/start?env=development", follow_redirects=False)
    state = dict(p.split("=", 1) for p in start.headers["location"].split("?", 1)[1].split("&"))[
        "state"
    ]
    nonce = start.cookies["oauth2-nonce"]
    client.get(
        f"/api/auth/oauth2/handler/frame?code=c&state={state}",
        headers={"Cookie": f"oauth2-nonce={nonce}"},
    )
    text = client.get("/metrics").text
    assert 'auth_upstream_failures_total{host="127.0.0.1"}' in text
    assert 'auth_events_total{event="sign_in_failed",provider="oauth2"}' in text


def test_request_ids_are_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == (
        "abc-123"
    )
    forged = client.get("/healthz", headers={"X-Request-Id": 'x" injected="1'})
    assert forged.headers["x-request-id"] != 'x" injected="1'
    assert len(forged.headers["x-request-id"]) == 32


def test_audit_events_name_the_refusal_without_secrets(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.audit"):
        client.get("/api/auth/oauth2/start?env=development&origin=http://evil.example")
        client.get(
            "/api/auth/oauth2/refresh?env=development",
            headers={"X-Requested-With": "XMLHttpRequest", "Cookie": "oauth2-refresh-token=forged"},
        )
    events = {r.getMessage(): r for r in caplog.records if r.name == "app.audit"}
    assert (
        events["origin_refused"].__dict__["reason"] == "Origin 'http://evil.example' is not allowed"
    )
    failed = events["refresh_failed"].__dict__
    assert failed["reason"] == "Invalid session cookie"
    assert "forged" not in str(failed)


def test_access_logs_redact_codes_and_state() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:1",
            "GET",
            "/api/auth/oidc/handler/frame?code=SECRET&state=abc&x=1",
            "1.1",
            200,
        ),
        None,
    )
    RedactQuery().filter(record)
    message = record.getMessage()
    assert "SECRET" not in message and "state=abc" not in message
    assert "code=[redacted]&state=[redacted]&x=1" in message


def test_readiness_answers_within_its_own_budget_when_the_database_hangs() -> None:
    # A key store whose database accepts and never answers: readiness must not wait for
    # the store's 10 s deadline (20 s against a frozen PostgreSQL).
    from app.core.clock import SystemClock
    from app.handlers.operations import READINESS_BUDGET_SECONDS
    from app.identity.keys import MemoryKeyStore
    from app.server.application import create_app
    from app.server.wiring import Dependencies

    budgets: list[float | None] = []

    class HangingStore(MemoryKeyStore):
        async def ping(self, *, timeout_seconds: float | None = None) -> None:
            budgets.append(timeout_seconds)
            from app.db.errors import bounded

            async def hang() -> None:
                await asyncio.Event().wait()

            await bounded("Key store", hang, timeout_seconds=timeout_seconds or 10)

    from app.config.settings import read_settings

    app = create_app(
        read_settings(
            {"app": {"baseUrl": "http://localhost:3000"}, "backend": {"baseUrl": BACKEND_BASE_URL}}
        ),
        development=True,
        deps=Dependencies(clock=SystemClock(), key_store=HangingStore()),
    )
    with TestClient(app, base_url=BACKEND_BASE_URL) as c:
        response = c.get("/readyz")
    assert response.status_code == 503
    assert "did not answer within 1.5s" in response.json()["checks"]["keyStore"]
    assert budgets == [READINESS_BUDGET_SECONDS]


def test_every_metric_is_documented_in_operations_md(client: TestClient) -> None:
    text = client.get("/metrics").text
    exposed = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        if name.endswith("_created"):  # prometheus-client's start time of each family
            continue
        exposed.add(f"{name}_total" if kind == "counter" and not name.endswith("_total") else name)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(auth_[a-z_]+)` \|", doc, re.MULTILINE))
    assert exposed == documented
