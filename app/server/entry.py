"""The ``auth-backend`` command, started with the cyclic garbage collector paused.

Start-up allocates about a million objects that live as long as the process (modules,
parsed specs, validators); collecting them over and over while they are created costs
~0.15 s of a cold start. ``settle_collector`` turns it back on once the app is built,
with everything allocated so far frozen (never scanned again, and in ``--workers`` mode
never written to by the workers' collections: their pages stay shared).
"""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    from app.server.cli import main as cli_main

    try:
        return cli_main()
    finally:
        gc.enable()
