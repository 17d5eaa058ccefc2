"""``auth-backend``: serve the API, or check a configuration."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from app.config import ConfigError, Settings, load_config, read_settings
from app.observability import configure_logging

DEFAULT_CONFIG = Path(__file__).resolve().parent / "default-config.yaml"


def _settings(paths: list[Path]) -> Settings:
    return read_settings(load_config(paths, os.environ))


def _is_development(flag: bool) -> bool:
    # NODE_ENV is what Backstage deployments already set.
    return flag or os.environ.get("NODE_ENV") == "development"


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.application import Dependencies, create_app
    from app.clock import SystemClock

    development = _is_development(args.development)
    configs = args.config or [DEFAULT_CONFIG]
    settings = _settings(configs)
    app = create_app(
        settings,
        development=development,
        deps=Dependencies(
            clock=SystemClock(),
            data_dir=Path(args.data_dir),
            config_dir=configs[0].resolve().parent,
        ),
    )
    host = args.host or settings.listen_host or "0.0.0.0"
    port = args.port if args.port is not None else settings.listen_port
    logging.getLogger(__name__).info(
        "serving on http://%s:%s (%s)", host, port, "development" if development else "production"
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        # Our logging config (JSON with request ids) applies to uvicorn's loggers too.
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auth-backend", description=__doc__)
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
    p_serve.add_argument("--data-dir", default=os.environ.get("AUTH_BACKEND_DATA_DIR", "data"))
    p_serve.add_argument(
        "--development", action="store_true", help="development mode (also NODE_ENV=development)"
    )
    p_serve.add_argument("--log-level", default="info")
    p_serve.add_argument(
        "--log-format",
        choices=["json", "text"],
        default=os.environ.get("AUTH_BACKEND_LOG_FORMAT", "json"),
    )
    p_check = sub.add_parser("check-config", help="validate a configuration")
    p_check.add_argument("--config", action="append", type=Path, required=True)
    args = parser.parse_args(argv)
    configure_logging(
        json_logs=getattr(args, "log_format", "text") == "json",
        level=getattr(args, "log_level", "info"),
    )
    try:
        if args.command == "serve":
            return serve(args)
        from app.application import Dependencies, create_app
        from app.clock import SystemClock

        create_app(
            _settings(args.config),
            development=True,
            deps=Dependencies(clock=SystemClock(), config_dir=args.config[0].resolve().parent),
        )
        print("configuration OK")
        return 0
    except ConfigError as exc:
        print(f"auth-backend: invalid configuration: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
