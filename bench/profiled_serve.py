"""``auth-backend ARGS`` with cProfile switched by signals: SIGUSR1 starts profiling the
event loop's thread, SIGUSR2 stops and writes the statistics to ``$PROFILE_OUT``.

Used by ``refresh_grant.py --profile`` to profile only the measured grants (not the
start-up or the warm-up). Not for production: the profiler doubles the CPU it measures.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from types import FrameType

_profile = cProfile.Profile()


def _start(_signum: int, _frame: FrameType | None) -> None:
    _profile.enable()


def _stop(_signum: int, _frame: FrameType | None) -> None:
    _profile.disable()
    _profile.dump_stats(os.environ["PROFILE_OUT"])
    _profile.clear()


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    from app.server.entry import main

    sys.argv = ["auth-backend", *sys.argv[1:]]
    sys.exit(main())
