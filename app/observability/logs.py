"""Logs.

* JSON logs (python-json-logger) carrying the request id (asgi-correlation-id: the
  ``X-Request-Id`` header, kept when it is a plain token, generated otherwise, and echoed
  on the response).
* Prometheus metrics (prometheus-client) in a registry per application: requests by
  provider, route and status, their latency, upstream (identity provider) call latency and
  failures, sign-in outcomes and key rotations. Served at ``/metrics``.
* Audit events: one structured log line per sign-in, failure (with the reason), refresh,
  refresh reused within the grace window, logout and refused origin, state or nonce;
  never a token or secret.
"""

from __future__ import annotations

import logging
import re
import sys

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def is_safe_request_id(value: str) -> bool:
    # Anything else could forge log lines; a fresh id is generated instead.
    return bool(_SAFE_REQUEST_ID.match(value))


_SENSITIVE_QUERY = re.compile(r"([?&](?:code|state|id_token|access_token|refresh_token)=)[^&\s]*")


class RedactQuery(logging.Filter):
    """Access logs print the callback URL: keep authorization codes and state out of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SENSITIVE_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def configure_logging(*, json_logs: bool, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CorrelationIdFilter(name="request_id"))
    handler.addFilter(RedactQuery())
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
                rename_fields={"correlation_id": "request_id", "levelname": "level"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every outbound request at INFO; the metrics count them instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
