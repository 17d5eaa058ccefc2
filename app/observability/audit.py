"""Audit events: one structured log line per sign-in, failure (with the reason), refresh,
refresh reused within the grace window, logout and refused origin, state or nonce; never a
token or secret."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.observability.metrics import Metrics


class Audit:
    """Structured audit events (logger ``app.audit``), counted in the metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._log = logging.getLogger("app.audit")
        self._metrics = metrics

    def event(self, name: str, *, provider: str, **fields: Any) -> None:
        self._metrics.events.labels(name, provider).inc()
        self._log.info(name, extra={"event": name, "provider": provider, **_safe(fields)})


def _safe(fields: Mapping[str, Any]) -> dict[str, Any]:
    # Audit lines are for people: reasons and origins, never credentials.
    return {k: v for k, v in fields.items() if "token" not in k and "secret" not in k}
