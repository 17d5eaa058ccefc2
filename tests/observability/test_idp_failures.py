"""Identity-provider failures: a WARNING with the cause, at most one line per provider and
cause a minute (with how many were not logged), and a counter by provider and cause."""

from __future__ import annotations

import logging

import httpx2
import pytest
from starlette.testclient import TestClient

from app.observability.idp_failures import IdentityProviderFailures, failure_cause
from app.observability.metrics import Metrics
from app.providers.oauth2_base import UpstreamError
from tests.fakes.app_factory import BACKEND_BASE_URL, registry_app


def _raised(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as caught:  # noqa: BLE001
        return caught


def test_the_cause_is_read_from_the_exception_chain() -> None:
    request = httpx2.Request("GET", "https://idp.example.com/")
    timeout = _raised(UpstreamError("x"), httpx2.ReadTimeout("slow", request=request))
    refused = _raised(UpstreamError("x"), httpx2.ConnectError("refused", request=request))
    assert failure_cause(timeout) == "timeout"
    assert failure_cause(refused) == "unreachable"
    assert failure_cause(UpstreamError("status 502")) == "bad_response"


def test_warnings_are_rate_limited_per_provider_and_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    metrics = Metrics({"oidc", "github"})
    failures = IdentityProviderFailures(metrics, clock=lambda: now[0], interval_seconds=60)
    with caplog.at_level(logging.WARNING, logger="app.identity_provider"):
        for _ in range(3):
            failures.record("oidc", UpstreamError("Failed to discover, status 502"))
        failures.record("github", UpstreamError("status 500"))
        now[0] = 61.0
        failures.record("oidc", UpstreamError("Failed to discover, status 503"))
    assert [r.getMessage() for r in caplog.records] == [
        "identity provider of 'oidc' failed (bad_response): Failed to discover, status 502",
        "identity provider of 'github' failed (bad_response): status 500",
        "identity provider of 'oidc' failed (bad_response): Failed to discover, status 503 "
        "(2 more since the last line)",
    ]
    value = metrics.registry.get_sample_value(
        "auth_identity_provider_failures_total", {"provider": "oidc", "cause": "bad_response"}
    )
    assert value == 4


def test_a_failed_code_exchange_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    # registry_app's oauth2 provider has its token URL on a closed port.
    with TestClient(registry_app(), base_url=BACKEND_BASE_URL) as client:
        with caplog.at_level(logging.WARNING, logger="app.identity_provider"):
            for _ in range(2):
                start = client.get("/api/auth/oauth2/start?env=development", follow_redirects=False)
                query = start.headers["location"].split("?", 1)[1]
                state = dict(p.split("=", 1) for p in query.split("&"))["state"]
                nonce = start.cookies["oauth2-nonce"]
                client.get(
                    f"/api/auth/oauth2/handler/frame?code=c&state={state}",
                    headers={"Cookie": f"oauth2-nonce={nonce}"},
                )
        text = client.get("/metrics").text
    (line,) = [r for r in caplog.records if r.name == "app.identity_provider"]
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("identity provider of 'oauth2' failed (unreachable): ")
    assert (
        'auth_identity_provider_failures_total{cause="unreachable",provider="oauth2"} 2.0' in text
    )
