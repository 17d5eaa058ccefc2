"""Liveness, readiness and metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from app.core.errors import NotFoundError, ServiceUnavailableError
from app.handlers.context import Services
from app.handlers.identity import authorization_server_metadata as _metadata
from app.handlers.responses import json_response, respond


async def healthz(services: Services) -> Response:
    return json_response({"status": "ok"})


# Readiness answers within this, whatever the database does: a probe that waits for the
# database's own 10 s deadline (20 s with a frozen PostgreSQL) tells the orchestrator
# nothing sooner and ties up a connection per probe.
READINESS_BUDGET_SECONDS = 1.5


async def readyz(services: Services) -> Response:
    checks: dict[str, str] = {}
    try:
        await services.token_issuer.ping(timeout_seconds=READINESS_BUDGET_SECONDS)
        checks["keyStore"] = "ok"
    except ServiceUnavailableError as exc:
        checks["keyStore"] = exc.message
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(services: Services) -> Response:
    if services.settings.metrics_listen is not None:
        # Kept off the public listener: see app.server.metrics_listener.
        raise NotFoundError("Metrics are served on their own listener (backend.metrics)")
    return respond(
        generate_latest(services.metrics.exposition()),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


async def authorization_server_metadata(services: Services) -> Response:
    """RFC 8414's path-inserted location for the issuer ``<backend.baseUrl>/api/auth``."""
    return await _metadata(services)
