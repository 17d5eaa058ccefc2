"""Serve our app with N uvicorn worker processes (``auth-backend serve`` has one process).

Used by the harness only while ``auth-backend serve --workers`` does not exist. Every
worker builds the app the way ``app.server.cli.serve`` does (``create`` is uvicorn's factory),
with the same uvicorn settings: uvloop, httptools, our JSON logging, no server header.

    python bench/workers.py --workers 2 --config app-config.yaml --data-dir data
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

_CONFIG_ENV = "BENCH_AUTH_CONFIG"
_DATA_DIR_ENV = "BENCH_AUTH_DATA_DIR"


def create() -> Any:
    """uvicorn app factory, run in each worker process."""
    from app.config.loader import load_config
    from app.config.settings import read_settings
    from app.core.clock import SystemClock
    from app.observability.logs import configure_logging
    from app.server.application import create_app
    from app.server.wiring import Dependencies

    configure_logging(json_logs=True, level="info")
    config = Path(os.environ[_CONFIG_ENV])
    settings = read_settings(load_config([config], os.environ))
    return create_app(
        settings,
        development=False,
        deps=Dependencies(
            clock=SystemClock(),
            data_dir=Path(os.environ[_DATA_DIR_ENV]),
            config_dir=config.resolve().parent,
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()

    import uvicorn

    from app.config.loader import load_config
    from app.config.settings import read_settings
    from app.observability.logs import configure_logging

    configure_logging(json_logs=True, level="info")
    settings = read_settings(load_config([args.config], os.environ))
    os.environ[_CONFIG_ENV] = str(args.config.resolve())
    os.environ[_DATA_DIR_ENV] = str(args.data_dir.resolve())
    uvicorn.run(
        "workers:create",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        workers=args.workers,
        host=args.host or settings.listen_host,
        port=args.port or settings.listen_port,
        loop="uvloop",
        http="httptools",
        log_level="info",
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
