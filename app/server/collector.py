"""The cyclic garbage collector during start-up: paused while the app is built, then
frozen (see ``app.server.entry``)."""

from __future__ import annotations

import gc


def settle_collector() -> None:
    gc.freeze()
    gc.enable()
