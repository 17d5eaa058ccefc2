"""Identity-provider failures: users get a 503 (or a failed sign-in or refresh); operators
get a WARNING with the cause, at most one line per provider and cause a minute (an outage
must not flood the log), and ``auth_identity_provider_failures_total``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import httpx2

from app.observability.metrics import Metrics

log = logging.getLogger("app.identity_provider")

LOG_INTERVAL_SECONDS = 60.0


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def failure_cause(exc: BaseException) -> str:
    """``timeout``, ``unreachable`` (no answer: DNS, refused, TLS) or ``bad_response``
    (an answer that is not what the protocol says: 5xx, not JSON, missing fields)."""
    for item in _chain(exc):
        if isinstance(item, httpx2.TimeoutException | TimeoutError):
            return "timeout"
        if isinstance(item, httpx2.TransportError):
            return "unreachable"
    return "bad_response"


class IdentityProviderFailures:
    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval_seconds: float = LOG_INTERVAL_SECONDS,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._interval = interval_seconds
        # (provider, cause) -> (when last logged, failures not logged since)
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def record(self, provider: str, exc: BaseException) -> None:
        cause = failure_cause(exc)
        self._metrics.identity_provider_failures.labels(provider, cause).inc()
        key = (provider, cause)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return
        suppressed = last[1] if last is not None else 0
        self._last[key] = (now, 0)
        log.warning(
            "identity provider of '%s' failed (%s): %s%s",
            provider,
            cause,
            exc,
            f" ({suppressed} more since the last line)" if suppressed else "",
            extra={"provider": provider, "cause": cause},
        )
