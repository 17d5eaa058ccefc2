"""Errors that speak Backstage.

Class names are Backstage's error names (``@backstage/errors``), because the frontend
reads ``error.name`` and ``error.cause.name`` from response bodies. The tree::

    BackstageError                  (500, name "Error")
    ├── InputError                  400  bad query, config or state input
    ├── AuthenticationError         401  missing/invalid credentials, failed refresh
    ├── NotAllowedError             403  origin, nonce or state refused
    ├── NotFoundError               404  unknown provider, env, user
    ├── MethodNotAllowedError       405  a route exists, but not for this method
    ├── ConflictError               409  ambiguous catalog lookup
    ├── PayloadTooLargeError        413  a callback body over its cap
    ├── TooManyRequestsError        429  rate limit hit
    ├── RequestHeaderFieldsTooLargeError  431  too many or too large header fields
    ├── NotImplementedError_        501  proxy providers' /start and /handler/frame
    └── ServiceUnavailableError     503  key store or identity provider unreachable

Every error renders as ``{error: {name, message[, cause]}, request: {method, url},
response: {statusCode}}`` (``render_error_body``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any


class BackstageError(Exception):
    """Base: an error with a Backstage name, an HTTP status and an optional cause."""

    name = "Error"
    status_code = 500

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        # Backstage's CustomErrorBase folds the cause into the message.
        full = message
        if cause is not None:
            full = f"{message}; caused by {error_name(cause)}: {error_message(cause)}"
        super().__init__(full)
        self.message = full
        self.cause = cause

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "message": self.message}
        if self.cause is not None:
            body["cause"] = serialize_error(self.cause)
        return body


class InputError(BackstageError):
    """Raised when request input (query, state, config value) is malformed."""

    name = "InputError"
    status_code = 400


class AuthenticationError(BackstageError):
    """Raised when credentials are missing or invalid, and for every failed refresh."""

    name = "AuthenticationError"
    status_code = 401


class NotAllowedError(BackstageError):
    """Raised when an origin, nonce, state or domain is refused."""

    name = "NotAllowedError"
    status_code = 403


class NotFoundError(BackstageError):
    """Raised for unknown providers, environments and catalog users."""

    name = "NotFoundError"
    status_code = 404


class MethodNotAllowedError(BackstageError):
    """Raised when a path exists for other HTTP methods only."""

    name = "MethodNotAllowedError"
    status_code = 405


class ConflictError(BackstageError):
    """Raised when a catalog lookup matches more than one user."""

    name = "ConflictError"
    status_code = 409


class PayloadTooLargeError(BackstageError):
    """Raised when a request body is over its cap (the name of Node's http-errors, which
    Backstage's body parsers raise)."""

    name = "PayloadTooLargeError"
    status_code = 413


class RequestTimeoutError(BackstageError):
    """Raised when a client does not finish sending a request head in time."""

    name = "RequestTimeoutError"
    status_code = 408


class TooManyRequestsError(BackstageError):
    """Raised when a client exceeds a rate limit."""

    name = "TooManyRequestsError"
    status_code = 429


class RequestHeaderFieldsTooLargeError(BackstageError):
    """Raised when a request has too many header fields or too many bytes of them."""

    name = "RequestHeaderFieldsTooLargeError"
    status_code = 431


class NotImplementedError_(BackstageError):  # noqa: N801 - Backstage's name shadows a builtin
    """Raised by proxy providers for the OAuth-only routes."""

    name = "NotImplementedError"
    status_code = 501


class ServiceUnavailableError(BackstageError):
    """Raised when a dependency (key store, identity provider) cannot be reached."""

    name = "ServiceUnavailableError"
    status_code = 503


def error_name(exc: BaseException) -> str:
    if isinstance(exc, BackstageError):
        return exc.name
    return "Error"


def error_message(exc: BaseException) -> str:
    if isinstance(exc, BackstageError):
        return exc.message
    return str(exc) or exc.__class__.__name__


def serialize_error(exc: BaseException) -> dict[str, Any]:
    """``{name, message[, cause]}`` as Backstage's serializeError emits it (no stack)."""
    if isinstance(exc, BackstageError):
        return exc.to_json()
    return {"name": "Error", "message": error_message(exc)}


AUTH_MOUNT = "/api/auth"


def scope_url(scope: Mapping[str, Any], mount: str = AUTH_MOUNT) -> str:
    """An ASGI request's path and query, relative to ``mount`` (as error bodies name it)."""
    query = scope.get("query_string", b"").decode("latin-1")
    path = str(scope["path"]).removeprefix(mount)
    return f"{path}?{query}" if query else path


async def send_error_response(
    scope: Mapping[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[None]],
    error: BackstageError,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    mount: str = AUTH_MOUNT,
) -> None:
    """``error`` as a whole ASGI response in Backstage's body, for the layers that answer
    before any framework sees the request (middlewares, mounts)."""
    body = render_error_body(error, method=scope["method"], url=scope_url(scope, mount))
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def render_error_body(exc: BackstageError, *, method: str, url: str) -> bytes:
    """The standard error body; ``url`` is relative to the ``/api/auth`` mount."""
    return json.dumps(
        {
            "error": exc.to_json(),
            "request": {"method": method, "url": url},
            "response": {"statusCode": exc.status_code},
        },
        separators=(",", ":"),
    ).encode()
