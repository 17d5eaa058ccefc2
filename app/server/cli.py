"""``auth-backend``: serve the API, or check a configuration.

One piece (over 300 lines): the command line and the two commands it runs, whose
options (ports, workers, limits, timeouts) are read in one place.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from app.config.loader import explain_unset, load_config
from app.config.settings import Settings
from app.config.validation import ConfigError
from app.devidp.settings import dev_idp_settings
from app.observability.logs import configure_logging, flush_logs
from app.observability.multiprocess import metrics_directory
from app.server.asgi import (
    DATA_DIR_ENV,
    DEFAULT_CONFIG,
    LOG_FORMAT_ENV,
    build_app,
    is_development,
    load_settings,
    with_listen_host,
)
from app.server.collector import settle_collector
from app.server.descriptors import connection_limit, raise_soft_limit
from app.server.protocol import DEFAULT_HEAD_TIMEOUT, ConnectionLimits

__all__ = ["DEFAULT_CONFIG", "main"]

DEFAULT_GRACEFUL_TIMEOUT_SECONDS = 30
# A worker whose event loop has not ticked for this long is killed and replaced. Short:
# the kernel keeps handing a stuck worker its share of new connections (SO_REUSEPORT), all
# lost. Long enough for the longest the loop may block (nothing in the app blocks it for
# more than milliseconds; a loaded machine may stall it for seconds).
DEFAULT_WORKER_TIMEOUT_SECONDS = 10


# Keys whose value was dropped because its variable is unset: named when a start fails.
_UNSET: dict[str, str] = {}


def _settings(paths: list[Path], overrides: dict[str, str] | None = None) -> Settings:
    return load_settings(paths, {**os.environ, **(overrides or {})}, _UNSET)


# The embedded demo's URLs name its port; served on another one (7007 taken by a
# Backstage), they follow it: the app origin, this server's URL and so the development
# identity provider's issuer, and the oidc provider's discovery URL.
_DEMO_URL_KEYS = (
    "app_baseUrl",
    "backend_baseUrl",
    "auth_providers_oidc_development_metadataUrl",
)


def _demo_on_port(port: int) -> dict[str, str]:
    demo = load_config([DEFAULT_CONFIG], {})
    values = (
        demo["app"]["baseUrl"],
        demo["backend"]["baseUrl"],
        demo["auth"]["providers"]["oidc"]["development"]["metadataUrl"],
    )
    origin = f"http://localhost:{demo['backend']['listen']['port']}"
    return {
        f"APP_CONFIG_{key}": value.replace(origin, f"http://localhost:{port}")
        for key, value in zip(_DEMO_URL_KEYS, values, strict=True)
    }


def _is_development(flag: bool) -> bool:
    return is_development(flag, os.environ)


def serve(args: argparse.Namespace) -> int:
    development = _is_development(args.development)
    configs = [p.resolve() for p in (args.config or [DEFAULT_CONFIG])]
    demo_port = args.port if args.config is None and args.port is not None else None
    settings = _settings(configs, _demo_on_port(demo_port) if demo_port is not None else None)
    host = args.host or settings.listen_host or "0.0.0.0"
    port = args.port if args.port is not None else settings.listen_port
    # What the app checks (the development identity provider: loopback only) is the
    # host it really listens on.
    settings = with_listen_host(settings, host)
    # Refused before anything else starts (create_app checks again when it mounts it).
    dev_idp = dev_idp_settings(settings, development=development) is not None
    connections = _connection_limits(args)
    if args.workers is not None:
        return _serve_workers(
            args, settings, configs, development, host, port, connections, dev_idp=dev_idp
        )

    app = build_app(
        settings, configs=configs, development=development, data_dir=Path(args.data_dir)
    )
    settle_collector()
    logging.getLogger(__name__).info(
        "serving on http://%s:%s (%s)", host, port, "development" if development else "production"
    )
    # uvicorn re-raises the stop signal once its graceful shutdown is done, so that the
    # process ends by it (status 143). A clean stop is a success here (systemd, Docker
    # and make read 143 as a failure): SIGTERM then finds this no-op and serve returns 0.
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    try:
        _run_uvicorn(app, args, settings, host, port, connections)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    """Raises the open file limit (workers inherit it) and sets the connection limit
    below it."""
    if args.head_timeout <= 0:
        raise ConfigError("--head-timeout: must be more than 0 seconds")
    soft = raise_soft_limit()
    limit = args.max_connections or connection_limit(soft)
    if limit < 1:
        raise ConfigError("--max-connections: must be at least 1")
    logging.getLogger(__name__).info(
        "open file limit %d: at most %d connections per process", soft, limit
    )
    return ConnectionLimits(head_timeout=args.head_timeout, max_connections=limit)


def _run_uvicorn(
    app: Any,
    args: argparse.Namespace,
    settings: Settings,
    host: str,
    port: int,
    connections: ConnectionLimits,
) -> None:
    import uvicorn

    from app.server.protocol import limited_protocol

    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        # httptools, with the request head capped as it arrives (backend.requestLimits).
        # and the connections bounded (head timeout, connection limit).
        http=limited_protocol(settings.request_limits, connections),
        log_level=args.log_level,
        # Our logging config (JSON with request ids) applies to uvicorn's loggers too.
        log_config=None,
        proxy_headers=False,
        server_header=False,
        # SIGTERM: stop accepting, finish in-flight requests (at most this long), shut down.
        timeout_graceful_shutdown=args.graceful_timeout,
    )


def _serve_workers(
    args: argparse.Namespace,
    settings: Settings,
    configs: list[Path],
    development: bool,
    host: str,
    port: int,
    connections: ConnectionLimits,
    *,
    dev_idp: bool,
) -> int:
    if args.workers < 1:
        raise ConfigError("--workers: must be at least 1")
    if args.worker_timeout < 2:
        raise ConfigError("--worker-timeout: must be at least 2 seconds")
    if args.workers > 1 and dev_idp:
        raise ConfigError(
            "auth.devIdentityProvider: the development identity provider keeps its codes and "
            "tokens in one process's memory; serve it without --workers (or with --workers 1)"
        )
    # Every worker's metrics in one scrape: their files live in a directory of this run.
    with metrics_directory():
        return _build_and_run_workers(args, settings, configs, development, host, port, connections)


def _build_and_run_workers(
    args: argparse.Namespace,
    settings: Settings,
    configs: list[Path],
    development: bool,
    host: str,
    port: int,
    connections: ConnectionLimits,
) -> int:
    from app.server.workers import run

    # Built once, here in the master, before gunicorn forks the workers (its preload_app):
    # a bad config fails once, with its key path, and the workers start serving at once,
    # sharing the app's pages copy on write. Nothing it holds is bound to a process yet:
    # connections, the event loop and the first key are made in each worker's lifespan.
    application = build_app(
        settings, configs=configs, development=development, data_dir=Path(args.data_dir)
    )
    settle_collector()
    logging.getLogger(__name__).info(
        "serving on http://%s:%s with %d workers (%s)",
        host,
        port,
        args.workers,
        "development" if development else "production",
    )
    return run(
        application,
        host=host,
        port=port,
        workers=args.workers,
        graceful_timeout=args.graceful_timeout,
        worker_timeout=args.worker_timeout,
        log_level=args.log_level,
        connections=connections,
    )


def check_config(args: argparse.Namespace) -> int:
    from app.providers.registry import REGISTRY
    from app.server.check_config import check

    development = not args.production
    configs: list[Path] = args.config
    settings = _settings(configs)
    # Everything a start would refuse (data_dir: nothing is written while checking).
    from app.core.clock import SystemClock
    from app.server.application import create_app
    from app.server.wiring import Dependencies

    create_app(
        settings,
        development=development,
        deps=Dependencies(clock=SystemClock(), config_dir=configs[0].resolve().parent),
    )
    report = check(
        settings,
        development=development,
        providers=REGISTRY,
        dev_idp=dev_idp_settings(settings, development=development),
        config_dir=configs[0].resolve().parent,
    )
    flush_logs()
    print(report.render())
    if args.strict and report.warnings:
        print("auth-backend: warnings are errors (--strict)", file=sys.stderr)
        return 1
    return 0


def explain_sign_in(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from app.providers.registry import REGISTRY
    from app.server.explain_sign_in import explain
    from app.server.http_transport import OutboundTransport

    configs: list[Path] = args.config
    try:
        profile = json.loads(args.profile)
    except ValueError as exc:
        raise ConfigError(f"--profile: not JSON ({exc})") from exc
    if not isinstance(profile, dict):
        raise ConfigError("--profile: must be a JSON object")

    async def run() -> str:
        transport = OutboundTransport()
        try:
            result = await explain(
                _settings(configs),
                provider_id=args.provider,
                env=args.env,
                profile=profile,
                providers=REGISTRY,
                config_dir=configs[0].resolve().parent,
                transport=transport,
            )
        finally:
            await transport.aclose()
        print(result.render())
        return "ok" if result.identity is not None else "failed"

    return 0 if asyncio.run(run()) == "ok" else 1


def _version() -> str:
    try:
        return importlib.metadata.version("backstage-auth-backend")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auth-backend", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve the auth API")
    p_serve.add_argument(
        "--config",
        action="append",
        type=Path,
        help="app-config.yaml (repeatable; later files override)",
    )
    p_serve.add_argument("--host", default=None)
    p_serve.add_argument("--port", type=int, default=None)
    p_serve.add_argument("--data-dir", default=os.environ.get(DATA_DIR_ENV, "data"))
    p_serve.add_argument(
        "--development", action="store_true", help="development mode (also NODE_ENV=development)"
    )
    p_serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
    )
    p_serve.add_argument(
        "--log-format",
        choices=["json", "text"],
        default=os.environ.get(LOG_FORMAT_ENV, "json"),
    )
    p_serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="serve with N worker processes (gunicorn + uvicorn workers); default: one process",
    )
    p_serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=DEFAULT_GRACEFUL_TIMEOUT_SECONDS,
        help="on SIGTERM, seconds to finish in-flight requests (default %(default)s); keep it "
        "above the slowest refresh (the identity provider timeout): requests still running "
        "then are answered 503 with Retry-After",
    )
    p_serve.add_argument(
        "--worker-timeout",
        type=int,
        default=DEFAULT_WORKER_TIMEOUT_SECONDS,
        help="with --workers: seconds a stuck worker keeps its share of new connections "
        "before it is killed and replaced (default %(default)s)",
    )
    p_serve.add_argument(
        "--head-timeout",
        type=float,
        default=DEFAULT_HEAD_TIMEOUT,
        help="seconds a client has to send a request head before its connection is closed "
        "(default %(default)s)",
    )
    p_serve.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="open connections per process; past it a new one is answered 503 "
        "(default: the open file limit, raised to its hard limit, less a reserve)",
    )
    p_check = sub.add_parser(
        "check-config",
        help="validate a configuration; print callback URLs, cookie attributes and warnings",
    )
    p_check.add_argument("--config", action="append", type=Path, required=True)
    p_check.add_argument(
        "--production",
        action="store_true",
        help="check as a production start (default: development, as `make run`)",
    )
    p_check.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    p_explain = sub.add_parser(
        "explain-sign-in",
        help="run a provider's sign-in resolvers for a profile against the catalog; "
        "print each step and the identity it would issue (issues nothing)",
    )
    p_explain.add_argument("--config", action="append", type=Path, required=True)
    p_explain.add_argument("--provider", required=True, help="the provider id (auth.providers)")
    p_explain.add_argument(
        "--env", default=None, help="the provider environment (default: auth.environment)"
    )
    p_explain.add_argument(
        "--profile",
        required=True,
        help='what the identity provider reports, as JSON: \'{"email": "...", '
        '"email_verified": true}\'',
    )
    args = parser.parse_args(argv)
    configure_logging(
        json_logs=getattr(args, "log_format", "text") == "json",
        level=getattr(args, "log_level", "info"),
    )
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "explain-sign-in":
            return explain_sign_in(args)
        return check_config(args)
    except ConfigError as exc:
        message = explain_unset(str(exc), _UNSET)
        # The log lines before it first: the message is the last line, the one to read.
        flush_logs()
        print(f"auth-backend: invalid configuration: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
