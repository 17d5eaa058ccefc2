"""Every error leaves in Backstage's body, connexion's own problems included."""

from __future__ import annotations

import logging

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from app.errors import (
    BackstageError,
    InputError,
    MethodNotAllowedError,
    NotFoundError,
    render_error_body,
)

log = logging.getLogger(__name__)

AUTH_MOUNT = "/api/auth"


def _relative_url(request: ConnexionRequest) -> str:
    # Backstage's error handler sits inside the /api/auth router.
    path = request.url.path
    if path.startswith(AUTH_MOUNT + "/"):
        path = path[len(AUTH_MOUNT) :]
    query = request.url.query
    return f"{path}?{query}" if query else path


def _response(
    request: ConnexionRequest, exc: BackstageError, headers: dict[str, str] | None = None
) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=exc.status_code,
        mimetype="application/json",
        content_type="application/json; charset=utf-8",
        body=render_error_body(exc, method=request.method, url=_relative_url(request)),
        headers=headers or {},
    )


def backstage_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, BackstageError)
    return _response(request, exc)


def problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, ProblemException)
    # jsonschema details run over many lines and echo the schema: keep the first line.
    detail = (exc.detail or exc.title or "Invalid request").splitlines()[0]
    error: BackstageError
    if exc.status == 404:
        error = NotFoundError(detail)
    elif exc.status == 405:
        error = MethodNotAllowedError(detail)
    else:
        error = InputError(detail)
        error.status_code = exc.status if 400 <= exc.status < 500 else 400
    return _response(request, error, dict(exc.headers or {}))


def http_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    error: BackstageError
    if exc.status_code == 404:
        path = request.url.path
        if path.startswith(AUTH_MOUNT + "/"):
            provider = path[len(AUTH_MOUNT) + 1 :].split("/", 1)[0]
            error = NotFoundError(f"Unknown auth provider '{provider}'")
        else:
            error = NotFoundError("Not found")
    elif exc.status_code == 405:
        error = MethodNotAllowedError(
            f"Method {request.method} is not allowed for {request.url.path}"
        )
    else:
        error = InputError(exc.detail)
        error.status_code = exc.status_code
    return _response(request, error, headers)


def unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.exception("unhandled error", exc_info=exc)
    return _response(request, BackstageError("An internal error occurred"))
