"""``auth-backend serve --workers N``: gunicorn's master process over uvicorn workers.

Each worker imports ``app.asgi:create_from_environment`` after the fork (no app is built
in the master), runs uvloop + httptools like the single-process server, and logs through
this server's logging (request ids, JSON). SIGTERM (or SIGINT) to the master is a
graceful stop: workers stop accepting, finish the requests in flight within
``graceful_timeout`` seconds, run the app's shutdown, and exit; the master then exits 0.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from app.asgi import create_from_environment


class Worker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": False,
        "server_header": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's loggers go through the root handler (configure_logging), as in the
        # single-process server, not through gunicorn's own handlers.
        for name in ("uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers = []
            logger.propagate = True
        # Finish in-flight requests, but leave time for the app's shutdown before the
        # master's SIGKILL at graceful_timeout.
        self.config.timeout_graceful_shutdown = max(self.cfg.graceful_timeout - 1, 1)


class GunicornServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Called in each worker after the fork (preload_app is off).
        return create_from_environment()


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(*, host: str, port: int, workers: int, graceful_timeout: int, log_level: str) -> int:
    GunicornServer(
        {
            "bind": [bind_address(host, port)],
            "workers": workers,
            "worker_class": "app.workers.Worker",
            "graceful_timeout": graceful_timeout,
            "loglevel": log_level,
            "proc_name": "auth-backend",
            # gunicorn's runtime control socket (one path per user): not used, and two
            # servers on one machine would contend for it.
            "control_socket_disable": True,
            # Configuration errors surface before the fork (the CLI validated); a worker
            # that still fails to boot stops the master instead of looping.
            "preload_app": False,
        }
    ).run()
    return 0
