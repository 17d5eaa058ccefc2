"""Every error leaves in Backstage's body, connexion's own problems included."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Mount, Route

from app.core.errors import (
    AUTH_MOUNT,
    BackstageError,
    InputError,
    MethodNotAllowedError,
    NotFoundError,
    render_error_body,
)
from app.oauth.origins import ORIGIN_QUERY_PATTERN

log = logging.getLogger(__name__)


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


_ORIGIN_PATTERN = re.compile(ORIGIN_QUERY_PATTERN)
_OAUTH_ROUTE = re.compile(r"^/api/auth/[^/]+/(start|handler/frame|frame/handler|refresh|logout)$")


def _backstage_input_message(request: ConnexionRequest) -> str | None:
    """Backstage's wording for the input the spec refuses on the OAuth routes, checked in
    Backstage's order (environment first, then the app origin)."""
    if not _OAUTH_ROUTE.match(request.url.path):
        return None
    if not request.query_params.get("env"):
        return "Must specify 'env' query to select environment"
    origin = request.query_params.get("origin")
    if origin is not None and not _ORIGIN_PATTERN.match(origin):
        return "App origin is invalid, failed to parse"
    return None


def problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, ProblemException)
    # jsonschema details run over many lines and echo the schema: keep the first line.
    detail = (exc.detail or exc.title or "Invalid request").splitlines()[0]
    error: BackstageError
    if exc.status >= 500:
        log.error("server-side problem: %s", detail)
        error = BackstageError("An internal error occurred")
    elif exc.status == 400 and (message := _backstage_input_message(request)):
        error = InputError(message)
    elif exc.status == 404:
        error = NotFoundError(detail)
    elif exc.status == 405:
        error = MethodNotAllowedError(detail)
    else:
        error = InputError(detail)
        error.status_code = exc.status if 400 <= exc.status < 500 else 400
    return _response(request, error, dict(exc.headers or {}))


def http_error(
    request: ConnexionRequest,
    exc: Exception,
    *,
    routes: Callable[[], list[BaseRoute]] | None = None,
) -> ConnexionResponse:
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
        # Connexion adds one route per operation, and Starlette's Allow names only the
        # first route that matched the path: collect every method the path serves.
        allowed = _allowed_methods(routes() if routes else [], request)
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    else:
        error = InputError(exc.detail)
        error.status_code = exc.status_code
    return _response(request, error, headers)


def _allowed_methods(routes: list[BaseRoute], request: ConnexionRequest) -> set[str]:
    scope = {"type": "http", "path": request.url.path, "root_path": "", "method": request.method}
    return _collect_methods(routes, scope)


def _collect_methods(routes: list[BaseRoute], scope: dict[str, Any]) -> set[str]:
    methods: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            methods |= _collect_methods(route.routes, {**scope, **child})
        elif isinstance(route, Route) and route.methods:
            methods |= route.methods
    return methods


def unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.exception("unhandled error", exc_info=exc)
    return _response(request, BackstageError("An internal error occurred"))


def undecodable(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # connexion decodes JSON bodies as UTF-8 before validating them and lets the
    # UnicodeDecodeError out: a client's bad bytes, not our failure.
    return _response(request, InputError("Request body is not valid UTF-8"))
