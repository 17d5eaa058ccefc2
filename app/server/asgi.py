"""The application as an importable factory, for process managers that import it.

``auth-backend serve --workers N`` builds the app itself, in gunicorn's master.
``create_from_environment()`` is for gunicorn (or another process manager) run directly:
it builds the app from ``AUTH_BACKEND_*`` environment variables, in each worker::

    AUTH_BACKEND_CONFIG=/etc/auth-backend/app-config.yaml \\
      gunicorn -k app.server.workers.Worker -b 127.0.0.1:7007 \\
        'app.server.asgi:create_from_environment()'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from app.config.loader import load_config
from app.config.settings import Settings, read_settings
from app.observability.logs import configure_logging

if TYPE_CHECKING:
    # Imported by build_app's callees: `import app.server.asgi` (the CLI, gunicorn's master)
    # does not load connexion.
    from connexion import AsyncApp

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "default-config.yaml"

# Config files, os.pathsep-separated (later ones override earlier ones).
CONFIG_ENV = "AUTH_BACKEND_CONFIG"
# "1": development mode (NODE_ENV=development works too, as in Backstage).
DEVELOPMENT_ENV = "AUTH_BACKEND_DEVELOPMENT"
# The host the server listens on, when it is not backend.listen.host.
HOST_ENV = "AUTH_BACKEND_HOST"
DATA_DIR_ENV = "AUTH_BACKEND_DATA_DIR"
LOG_FORMAT_ENV = "AUTH_BACKEND_LOG_FORMAT"
LOG_LEVEL_ENV = "AUTH_BACKEND_LOG_LEVEL"


def is_development(flag: bool, environ: Mapping[str, str]) -> bool:
    # NODE_ENV is what Backstage deployments already set.
    return flag or environ.get("NODE_ENV") == "development"


def load_settings(
    paths: list[Path], environ: Mapping[str, str], unset: dict[str, str] | None = None
) -> Settings:
    """``unset`` collects the keys dropped for an unset variable (``explain_unset``).

    Raises:
        ConfigError: naming the key path.
    """
    return read_settings(load_config(paths, environ, unset))


def with_listen_host(settings: Settings, host: str) -> Settings:
    """``settings`` with the host the server really listens on (``--host`` wins)."""
    return dataclasses.replace(settings, listen_host=host)


def build_app(
    settings: Settings, *, configs: list[Path], development: bool, data_dir: Path
) -> AsyncApp:
    """Raises ConfigError."""
    from app.core.clock import SystemClock
    from app.server.application import create_app
    from app.server.wiring import Dependencies

    return create_app(
        settings,
        development=development,
        deps=Dependencies(
            clock=SystemClock(), data_dir=data_dir, config_dir=configs[0].resolve().parent
        ),
    )


def create_from_environment() -> AsyncApp:
    """The app as ``auth-backend serve`` would build it, from ``AUTH_BACKEND_*`` variables.

    Raises:
        ConfigError: the configuration is invalid.
    """
    environ = os.environ
    configure_logging(
        json_logs=environ.get(LOG_FORMAT_ENV, "json") == "json",
        level=environ.get(LOG_LEVEL_ENV, "info"),
    )
    configs = [Path(p) for p in environ.get(CONFIG_ENV, "").split(os.pathsep) if p]
    configs = configs or [DEFAULT_CONFIG]
    settings = load_settings(configs, environ)
    host = environ.get(HOST_ENV)
    if host:
        settings = with_listen_host(settings, host)
    return build_app(
        settings,
        configs=configs,
        development=is_development(environ.get(DEVELOPMENT_ENV) == "1", environ),
        data_dir=Path(environ.get(DATA_DIR_ENV, "data")),
    )
