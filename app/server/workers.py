"""``auth-backend serve --workers N``: gunicorn's master process over uvicorn workers.

The master builds the app (gunicorn's ``preload_app``) and forks the workers, which share
its pages copy on write. The app holds no per-process state until it runs in a worker:
the event loop, database connections and the worker's own signing key are made in its
lifespan, outbound HTTP connections at their first use. Each worker runs uvloop +
httptools like the single-process server, and logs through this server's logging
(request ids, JSON).
SIGTERM (or SIGINT) to the master is a graceful stop: workers stop accepting, finish the
requests in flight within ``graceful_timeout`` seconds, run the app's shutdown, and exit;
the master then exits 0. A worker that dies is replaced.

Connections are spread across the workers by the kernel (Linux): the master binds the
address without listening on it (which reserves it, and fails as gunicorn's bind did when
something else listens there), and every worker listens on a socket of its own bound to
that address with ``SO_REUSEPORT``, once its app has started. New connections are hashed
across the workers that listen; nothing ever queues on a socket that nobody accepts from,
so no connection is reset while workers start, and a worker that dies takes only the
connections it had accepted or queued with it. (With one shared listening socket, all
connections opened at once go to the worker that wakes first.)
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from app.config.backend import RequestLimitSettings
from app.observability.multiprocess import mark_dead
from app.server.protocol import ConnectionLimits, LimitedHttpToolsProtocol, limited_protocol

# Linux hashes new connections across the listening SO_REUSEPORT sockets of an address.
# Elsewhere (macOS, the BSDs: SO_REUSEPORT does not spread them) the master listens, as
# gunicorn does, and the workers accept from its socket.
SPREAD_CONNECTIONS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


class ReservedAddress(socket.socket):
    """The master's socket: bound, never listening. Holds the address for the workers
    (they bind theirs to its ``getsockname()``: the port when it was 0, the address a
    host name resolved to). In gunicorn's ``Arbiter.LISTENERS``, so the workers get it."""

    def __str__(self) -> str:
        host, port = self.getsockname()[:2]
        return (
            f"http://[{host}]:{port}" if self.family == socket.AF_INET6 else f"http://{host}:{port}"
        )


def reserve_address(host: str, port: int) -> ReservedAddress:
    """Bind ``host:port`` as gunicorn does (``SO_REUSEADDR``, IPv4 unless the host is an
    IPv6 address), without listening.

    Raises:
        OSError: the address is in use (something listens on it) or unavailable.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = ReservedAddress(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def own_listener(reserved: socket.socket) -> socket.socket:
    """This worker's socket on the reserved address: ``SO_REUSEPORT``, bound, not yet
    listening (uvicorn's ``create_server`` calls ``listen()`` after the app's startup, so
    no connection waits on a worker that is still booting)."""
    sock = socket.socket(reserved.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reserved.family == socket.AF_INET6:
            v6only = reserved.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        sock.bind(reserved.getsockname())
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def non_loopback_addresses(sockets: list[socket.socket]) -> list[str]:
    """The addresses of ``sockets`` other than loopback (a unix socket is one: whoever
    connects to it, a proxy or anything else, forwards requests from anywhere)."""
    found: list[str] = []
    for sock in sockets:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            found.append(f"unix:{sock.getsockname()}")
            continue
        host = sock.getsockname()[0]
        if not ipaddress.ip_address(host.partition("%")[0]).is_loopback:
            found.append(host)
    return found


def _listens(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


class Worker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop",
        # httptools, with the request head capped as it arrives: the app's limits once it
        # is loaded (_serve), the defaults until then.
        "http": LimitedHttpToolsProtocol,
        "proxy_headers": False,
        "server_header": False,
    }
    # gunicorn's: the master's listeners (here: reserved addresses), then this worker's.
    sockets: list[socket.socket]
    # Set by run() in the master, before the fork.
    connection_limits: ConnectionLimits = ConnectionLimits()

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

    def init_process(self) -> None:
        # After the fork. A socket the master only reserved: listen on one of our own.
        # A listening one (plain `gunicorn -k app.server.workers.Worker`, systemd's): as it is.
        sockets: list[socket.socket] = []
        for inherited in self.sockets:
            if _listens(inherited):
                sockets.append(inherited)
            else:
                sockets.append(own_listener(inherited))
                inherited.close()
        self.sockets = sockets
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # The config's host is what the app was told; these sockets are where it listens
        # (gunicorn -b may say anything).
        exposed = non_loopback_addresses(self.sockets)
        if getattr(self.wsgi, "loopback_only", False) and exposed:
            logging.getLogger(__name__).error(
                "auth.devIdentityProvider.enabled: refusing to start the development identity "
                "provider while the server listens on %s; it runs only on loopback "
                "(bind 127.0.0.1, ::1 or localhost)",
                ", ".join(exposed),
            )
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def _serve(self) -> None:
        limits = getattr(self.wsgi, "request_limits", None)
        if not isinstance(limits, RequestLimitSettings):
            limits = RequestLimitSettings()
        self.config.http = limited_protocol(limits, self.connection_limits)
        await super()._serve()


class Master(Arbiter):  # type: ignore[misc]
    def handle_int(self) -> None:
        # A graceful stop, as SIGTERM. (gunicorn's SIGINT is a quick stop: SIGQUIT to the
        # workers, which uvicorn's do not act on; they were killed at graceful_timeout.)
        self.handle_term()


class GunicornServer(BaseApplication):  # type: ignore[misc]
    def __init__(
        self, application: Any, options: dict[str, Any], listeners: list[socket.socket]
    ) -> None:
        self._application = application
        self._options = options
        self._listeners = listeners
        super().__init__()

    def run(self) -> None:
        master = Master(self)
        # gunicorn creates (listening) sockets only when it has none.
        master.LISTENERS = list(self._listeners)
        try:
            master.run()
        except RuntimeError as exc:  # as BaseApplication.run
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._application


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(
    application: Any,
    *,
    host: str,
    port: int,
    workers: int,
    graceful_timeout: int,
    log_level: str,
    worker_timeout: int,
    connections: ConnectionLimits,
) -> int:
    """Serve ``application`` (built, its lifespan not started) with ``workers`` processes."""
    Worker.connection_limits = connections
    options: dict[str, Any] = {
        "bind": [bind_address(host, port)],
        "workers": workers,
        "worker_class": "app.server.workers.Worker",
        "graceful_timeout": graceful_timeout,
        # A worker that has not notified the master for this long is killed (SIGABRT, then
        # SIGKILL a tick later) and replaced (gunicorn's default: 30).
        "timeout": worker_timeout,
        "loglevel": log_level,
        "proc_name": "auth-backend",
        "logger_class": "app.server.gunicorn_logging.ServerLogger",
        # gunicorn's runtime control socket (one path per user): not used, and two
        # servers on one machine would contend for it.
        "control_socket_disable": True,
        # The CLI built the app (a bad config failed there, once): the workers inherit
        # it. A worker that fails to start (its lifespan: the database) stops the master
        # instead of looping.
        "preload_app": True,
        # A worker's files stay in the metrics directory (its counts are part of the
        # totals); only its live gauges go.
        "child_exit": lambda _arbiter, worker: mark_dead(worker.pid),
    }
    listeners: list[socket.socket] = []
    if SPREAD_CONNECTIONS:
        try:
            listeners.append(reserve_address(host, port))
        except OSError as exc:
            logging.getLogger(__name__).error(
                "cannot bind %s: %s", bind_address(host, port), exc.strerror or exc
            )
            return 1
    GunicornServer(application, options, listeners).run()
    return 0
