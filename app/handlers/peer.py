"""The direct peer's address, recorded by the edge middleware before any proxy header
rewrites the client (``app.server.middleware.edge``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PEER_STATE_KEY = "peer"


def peer_host(scope: Mapping[str, Any]) -> str | None:
    """The address of the direct peer (a proxy, or the client itself)."""
    state = scope.get("state") or {}
    peer = state.get(PEER_STATE_KEY)
    return peer if isinstance(peer, str) else None
