"""Settings of the middleware in front of the handlers (``backend.cors``, ``backend.rateLimit``,
``backend.requestLimits``)."""

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


# Browsers send about 20 fields and a few KiB (a refresh cookie is chunked at 4 KiB).
DEFAULT_MAX_HEADER_FIELDS = 100
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
# A form_post callback carries a code, a state and at most an ID token and a user object.
DEFAULT_MAX_CALLBACK_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RequestLimitSettings:
    """``backend.requestLimits`` (ours): refused at the edge, before any handler."""

    # Header fields per request, and their names and values in bytes together (431).
    header_fields: int = DEFAULT_MAX_HEADER_FIELDS
    header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    # The body of a callback (/handler/frame, /frame/handler) in bytes (413).
    callback_body_bytes: int = DEFAULT_MAX_CALLBACK_BODY_BYTES
