"""Backstage's backend health endpoints (``/.backstage/health/v1``)."""

from __future__ import annotations

from starlette.responses import Response

from app.handlers.context import Services
from app.handlers.responses import json_response


async def readiness(services: Services) -> Response:
    return json_response({"status": "ok"})
