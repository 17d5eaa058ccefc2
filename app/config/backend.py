"""Settings of the middleware in front of the handlers (``backend.cors``, ``backend.rateLimit``)."""

from __future__ import annotations

from dataclasses import dataclass

# The cors package's default methods.
DEFAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")


@dataclass(frozen=True)
class CorsSettings:
    origins: tuple[str, ...]
    methods: tuple[str, ...] = DEFAULT_METHODS
    credentials: bool = False
    # Empty: mirror what the browser asks for (the cors package's default).
    allowed_headers: tuple[str, ...] = ()
    exposed_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None


@dataclass(frozen=True)
class RateLimitSettings:
    window_seconds: float
    limit: int
    allow_list: tuple[str, ...] = ()
