"""Backstage's backend health endpoints (``/.backstage/health/v1``)."""

from __future__ import annotations

from starlette.responses import Response

from app.handlers.context import Services
from app.handlers.responses import json_response


async def readiness(services: Services) -> Response:
    return json_response({"status": "ok"})


# Backstage answers both the same; the spec needs an operationId of its own for each.
liveness = readiness
