"""Backstage's backend health endpoints (``/.backstage/health/v1``)."""

from __future__ import annotations

from starlette.responses import Response

from app.handlers.responses import json_response
from app.services import Services


async def readiness(services: Services) -> Response:
    return json_response({"status": "ok"})
