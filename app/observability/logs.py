"""Logs: JSON or text lines on stderr, never in the way of a request.

* The request id (asgi-correlation-id: the ``X-Request-Id`` header, kept when it is a plain
  token, generated otherwise, and echoed on the response) on every line, ``-`` outside a
  request.
* Records leave the request path through a bounded queue (``QueueHandler``); one thread
  writes them out (``QueueListener``). A log reader that stalls (a full pipe, a stuck
  collector) then costs dropped lines, counted in ``auth_log_records_dropped_total``,
  never a blocked event loop: liveness does not depend on whoever reads stderr.
* Access lines have ``code`` and ``state`` redacted; audit lines keep their fields in
  text mode too (``key=value`` after the message).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
from typing import TextIO

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def is_safe_request_id(value: str) -> bool:
    # Anything else could forge log lines; a fresh id is generated instead.
    return bool(_SAFE_REQUEST_ID.match(value))


_SENSITIVE_QUERY = re.compile(r"([?&](?:code|state|id_token|access_token|refresh_token)=)[^&\s]*")


class _DropContentTypeNotice(logging.Filter):
    """connexion warns on every request to an operation whose body has several content
    types (``/v1/token``, ``/v1/revoke``: form and JSON, as Backstage accepts both), though
    it then reads the request's own: noise on each token request, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("this operation accepts multiple content types")


_CONTENT_TYPE_NOTICE = _DropContentTypeNotice()


class RedactQuery(logging.Filter):
    """Access logs print the callback URL: keep authorization codes and state out of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SENSITIVE_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


# Lines waiting for the writer thread; past this, new lines are dropped (and counted).
QUEUE_CAPACITY = 10_000
# What a LogRecord carries by itself: anything else on a record is an extra field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "correlation_id",
    "taskName",
}
# uvicorn's copy of the message with ANSI colour codes: noise in any output.
_DROPPED_ATTRIBUTES = ("color_message",)


class _DropCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


DROPPED = _DropCounter()


def dropped_records() -> int:
    """Records dropped since the process started because the writer could not keep up."""
    return DROPPED.value


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Enqueues without waiting; a full queue drops the record (and counts it)."""

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            DROPPED.add()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        for name in _DROPPED_ATTRIBUTES:
            record.__dict__.pop(name, None)
        prepared: logging.LogRecord = super().prepare(record)
        return prepared


class _Listener(logging.handlers.QueueListener):
    # At exit the queue may be full: wait a little for room for the stop marker, then
    # leave the (daemon) writer behind rather than hang on a reader that never reads.
    STOP_WAIT_SECONDS = 5.0

    def __init__(self, records: queue.Queue[logging.LogRecord], writer: logging.Handler) -> None:
        super().__init__(records, writer)
        self._records = records

    def enqueue_sentinel(self) -> None:
        # QueueListener's stop marker is None (its documented _sentinel).
        self._records.put(None, timeout=self.STOP_WAIT_SECONDS)  # type: ignore[arg-type]

    def stop(self) -> None:
        try:
            super().stop()
        except queue.Full:
            self._thread = None


class _TextFormatter(logging.Formatter):
    """The classic line, then the record's extra fields (audit events) as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            k: v
            for k, v in vars(record).items()
            if k not in _STANDARD_ATTRIBUTES and k not in _DROPPED_ATTRIBUTES
        }
        if not extras:
            return line
        return line + " " + " ".join(f"{k}={v}" for k, v in extras.items())


class _Pipeline:
    """The queue and its writer thread; rebuilt in a forked child (gunicorn's workers),
    where the parent's thread does not exist."""

    def __init__(self) -> None:
        self.listener: _Listener | None = None
        self.queue_handler: _DroppingQueueHandler | None = None
        self.writer: logging.Handler | None = None
        self.capacity = QUEUE_CAPACITY

    def start(self, writer: logging.Handler, capacity: int) -> _DroppingQueueHandler:
        self.stop()
        self.writer, self.capacity = writer, capacity
        records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=capacity)
        handler = _DroppingQueueHandler(records)
        # In the emitting thread: the request id lives in a context variable.
        handler.addFilter(CorrelationIdFilter(name="request_id", default_value="-"))
        handler.addFilter(RedactQuery())
        self.queue_handler = handler
        self.listener = _Listener(records, writer)
        self.listener.start()
        return handler

    def stop(self) -> None:
        """Write out what is queued (at exit; a stalled reader bounds this by the pipe)."""
        if self.listener is not None:
            listener, self.listener = self.listener, None
            listener.stop()

    def after_fork(self) -> None:
        if self.writer is None or self.queue_handler is None:
            return
        # The parent's listener thread did not survive the fork: a new queue and thread.
        self.listener = None
        old = self.queue_handler
        new = self.start(self.writer, self.capacity)
        root = logging.getLogger()
        root.handlers[:] = [new if h is old else h for h in root.handlers]


_PIPELINE = _Pipeline()
atexit.register(_PIPELINE.stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_PIPELINE.after_fork)


def configure_logging(
    *,
    json_logs: bool,
    level: str = "INFO",
    stream: TextIO | None = None,
    capacity: int = QUEUE_CAPACITY,
) -> None:
    writer = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if json_logs:
        writer.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
                rename_fields={"correlation_id": "request_id", "levelname": "level"},
            )
        )
    else:
        writer.setFormatter(
            _TextFormatter("%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s")
        )
    handler = _PIPELINE.start(writer, capacity)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx2 logs every outbound request at INFO; the metrics count them instead.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("connexion.operations.openapi3").addFilter(_CONTENT_TYPE_NOTICE)


def flush_logs() -> None:
    """Write out every queued record and keep logging (tests, and before exit)."""
    if _PIPELINE.listener is not None and _PIPELINE.writer is not None:
        _PIPELINE.stop()
        _PIPELINE.start(_PIPELINE.writer, _PIPELINE.capacity)
        handler = _PIPELINE.queue_handler
        assert handler is not None
        logging.getLogger().handlers[:] = [handler]
