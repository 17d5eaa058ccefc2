"""``backend.metrics``: ``/metrics`` on a listener of its own, off the public one.

The metrics name upstream hosts, routes and refusal counts: in production they belong to
the cluster's Prometheus, not to whoever reaches the public port. With ``backend.metrics:
{host, port}`` the main listener answers ``/metrics`` with 404, and each process serves
its metrics on ``host:port`` from a second uvicorn server in the same event loop, started
and stopped by the app's lifespan (so ``serve``, ``serve --workers`` and the gunicorn
factory all get it). Under ``--workers`` every worker binds the port with
``SO_REUSEPORT`` and a scrape reaches one of them: each worker's own counters, as on the
main listener.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.errors import MethodNotAllowedError, NotFoundError, render_error_body
from app.observability.metrics import Metrics

_JSON = {"Content-Type": "application/json; charset=utf-8"}
# Scrapes are short: a stop does not wait long for one.
_GRACEFUL_SECONDS = 2


def metrics_app(metrics: Metrics) -> Starlette:
    async def serve_metrics(_request: Request) -> Response:
        return Response(
            generate_latest(metrics.exposition()), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def not_here(request: Request, exc: Exception) -> Response:
        error = (
            MethodNotAllowedError(f"Method {request.method} is not allowed here")
            if isinstance(exc, HTTPException) and exc.status_code == 405
            else NotFoundError("Only /metrics is served here")
        )
        body = render_error_body(error, method=request.method, url=request.url.path)
        return Response(body, status_code=error.status_code, headers=_JSON)

    return Starlette(
        routes=[Route("/metrics", serve_metrics, methods=["GET"])],
        exception_handlers={HTTPException: not_here},
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Every worker of `serve --workers` binds it (the kernel spreads the scrapes).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise OSError(f"backend.metrics: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def metrics_listener(metrics: Metrics, host: str, port: int) -> AsyncIterator[None]:
    """Serve ``metrics`` on ``host:port`` for the duration of the context.

    Raises:
        OSError: naming ``backend.metrics`` when the address cannot be bound.
    """
    sock = _bind(host, port)
    config = uvicorn.Config(
        metrics_app(metrics),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
    config.load()
    server = uvicorn.Server(config)
    # Server.serve would take over the process's signal handlers, which belong to the
    # main server: only its listening part is used.
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield
    finally:
        await server.shutdown(sockets=[sock])
