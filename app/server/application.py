"""Builds the ASGI application: one connexion API per configured provider.

``create_app`` takes the validated settings and every outside dependency (clock, HTTP
transport, key store, catalog) as parameters, so tests run the real app with fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.middleware.routing import RoutingMiddleware
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from app.config.settings import Settings
from app.core.clock import SystemClock
from app.core.errors import BackstageError, ServiceUnavailableError
from app.devidp import mount_configured_dev_idp
from app.identity.catalog_config import aclose_catalog, catalog_from_config
from app.identity.plugin_tokens import PluginTokenIssuer
from app.observability.logs import REQUEST_ID_HEADER, is_safe_request_id
from app.observability.metrics import MeteredTransport, Metrics
from app.providers.registry_types import (
    ProviderDeps,
)
from app.server import error_handlers
from app.server.authorization import run_cleanup
from app.server.documents import SPEC_DIR, add_documents
from app.server.http_transport import OutboundTransport
from app.server.lean_app import LeanAsyncApp, middlewares
from app.server.metrics_listener import metrics_listener
from app.server.middleware.cors import BackstageCORSMiddleware
from app.server.middleware.edge import ClientAddress, RateLimit
from app.server.middleware.limits import RequestLimits
from app.server.middleware.metrics import MetricsMiddleware
from app.server.middleware.shutdown import ShutdownCut
from app.server.middleware.startup import OneLineStartupFailure, StartupError
from app.server.runtimes import build_runtimes
from app.server.wiring import Dependencies, build_database, build_services, plugin_keys

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    development: bool = False,
    deps: Dependencies | None = None,
    validate_responses: bool = False,
) -> AsyncApp:
    """Build the application.

    Raises:
        ConfigError: when a provider's config is invalid (the message names the key path).
    """
    deps = deps or Dependencies(clock=SystemClock())
    metrics = Metrics(set(settings.providers))
    # Every call to an identity provider or catalog goes through one metered transport.
    base_transport = deps.transport or OutboundTransport()
    outbound = MeteredTransport(base_transport, metrics)
    database = build_database(settings, deps)
    plugin_tokens = PluginTokenIssuer(plugin_keys(settings, database, deps), deps.clock)
    catalog = deps.catalog
    if catalog is None:
        catalog = catalog_from_config(
            settings.raw,
            config_dir=deps.config_dir or Path.cwd(),
            clock=deps.clock,
            transport=outbound,
            discovery=settings.plugins,
            plugin_tokens=plugin_tokens,
        )
    services = build_services(
        settings,
        catalog,
        metrics,
        database,
        development=development,
        deps=deps,
        plugin_tokens=plugin_tokens,
        transport=outbound,
        outbound=base_transport if isinstance(base_transport, OutboundTransport) else None,
    )
    runtimes = build_runtimes(
        settings,
        services,
        ProviderDeps(clock=deps.clock, development=development, transport=outbound),
        deps.providers,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if database is not None:
            # Create and migrate; an unreachable database stops the start, as in Backstage.
            try:
                await database.start()
            except ServiceUnavailableError as exc:
                raise StartupError(
                    f"{exc.message}; check backend.database (the server needs its database "
                    "at start)"
                ) from exc
        listeners = contextlib.AsyncExitStack()
        if settings.metrics_listen is not None:
            await listeners.enter_async_context(metrics_listener(metrics, *settings.metrics_listen))
        # The first key waits out its publish delay while nobody is signing in yet.
        warm_up = asyncio.create_task(services.token_issuer.publish_first_key())
        cleanup = (
            asyncio.create_task(run_cleanup(services.authorization))
            if services.authorization is not None
            else None
        )
        try:
            yield
        finally:
            if cleanup is not None:
                cleanup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cleanup
            await listeners.aclose()
            warm_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm_up
            await services.token_issuer.aclose()
            for runtime in runtimes:
                for authenticator in runtime.authenticators():
                    await authenticator.aclose()
            await aclose_catalog(catalog)
            if services.plugin_callers is not None:
                await services.plugin_callers.aclose()
            if services.callers is not None:
                await services.callers.aclose()
            await outbound.aclose()
            if database is not None:
                await database.close()

    app = LeanAsyncApp(
        __name__,
        specification_dir=str(SPEC_DIR),
        lifespan=lifespan,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=settings.swagger_ui),
        middlewares=middlewares(),
    )
    app.request_limits = settings.request_limits
    add_documents(app, runtimes, services, deps.providers, validate_responses=validate_responses)
    _add_middlewares(app, settings, metrics)
    # After the others: inside request ids, metrics, CORS and rate limiting.
    app.loopback_only = mount_configured_dev_idp(app, settings, development=development) is not None
    app.add_error_handler(BackstageError, error_handlers.backstage_error)
    app.add_error_handler(ProblemException, error_handlers.problem)
    app.add_error_handler(UnicodeDecodeError, error_handlers.undecodable)
    app.add_error_handler(
        HTTPException, functools.partial(error_handlers.http_error, routes=lambda: _routes(app))
    )
    app.add_error_handler(Exception, error_handlers.unexpected)
    return app


def _routes(app: AsyncApp) -> list[BaseRoute]:
    """The operation routes of connexion's routing middleware (built on first request)."""
    for middleware in app.middleware.middleware_stack:
        if isinstance(middleware, RoutingMiddleware):
            return list(middleware.router.routes)
    return []


def _add_middlewares(app: AsyncApp, settings: Settings, metrics: Metrics) -> None:
    # Outermost first. All sit outside the exception middleware, so error responses (the
    # 401 of the first /refresh above all) are counted and carry CORS headers too.
    app.add_middleware(OneLineStartupFailure, position=MiddlewarePosition.BEFORE_EXCEPTION)
    # Oversized requests first: nothing else reads their headers or body.
    app.add_middleware(
        RequestLimits, position=MiddlewarePosition.BEFORE_EXCEPTION, limits=settings.request_limits
    )
    app.add_middleware(
        ClientAddress,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        trusted_proxies=settings.trusted_proxies,
    )
    app.add_middleware(
        CorrelationIdMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        header_name=REQUEST_ID_HEADER,
        validator=is_safe_request_id,
    )
    app.add_middleware(
        MetricsMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, metrics=metrics
    )
    if settings.cors is not None:
        app.add_middleware(
            BackstageCORSMiddleware,
            position=MiddlewarePosition.BEFORE_EXCEPTION,
            settings=settings.cors,
        )
    # Inside CORS and metrics: a request cut at the shutdown deadline is answered (503)
    # with CORS headers, and counted.
    app.add_middleware(ShutdownCut, position=MiddlewarePosition.BEFORE_EXCEPTION)
    if settings.rate_limit is not None:
        # Inside CORS, so a browser sees the 429 rather than a network error.
        app.add_middleware(
            RateLimit, position=MiddlewarePosition.BEFORE_EXCEPTION, settings=settings.rate_limit
        )
