"""gunicorn's own lines (the master's "Booting worker", "Handling signal", a worker's
timeout) through this server's logging: JSON like every other line under
``--log-format json``, with the request-id field, instead of gunicorn's plain text."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]


class ServerLogger(Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn's handlers write plain text to stderr: drop them, and let the records
        # reach the root handler (configure_logging) as uvicorn's do.
        for log in (self.error_log, self.access_log):
            log.handlers = []
            log.propagate = True
