"""Metrics that add up across ``serve --workers`` processes (prometheus-client's
multiprocess mode).

Each process writes its values to files of its own in one directory
(``PROMETHEUS_MULTIPROC_DIR``); a scrape, whichever worker answers it, reads them all. The
counters of a worker that died stay in its files, so totals never go down when a worker
is replaced. ``serve --workers`` makes the directory for its run and removes it at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess, values
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """A fresh directory for this run's metric files, in multiprocess mode while it
    lasts; removed (with the files) afterwards."""
    previous = os.environ.get(ENV)
    directory = Path(tempfile.mkdtemp(prefix="auth-backend-metrics-"))
    os.environ[ENV] = str(directory)
    # The value class is chosen from the environment when prometheus-client is imported;
    # the metrics are made after this (the app is built here), so choose again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        shutil.rmtree(directory, ignore_errors=True)


def mark_dead(pid: int) -> None:
    """A worker exited: its live gauges go (its counters stay, so totals never drop)."""
    if enabled():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def aggregate_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry for one scrape: every process's metrics, plus ``collectors``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for collector in collectors:
        registry.register(collector)
    return registry
