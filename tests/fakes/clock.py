"""A clock the test moves by hand."""

from __future__ import annotations

START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.current = now

    def reset(self, gap: float = 100_000.0) -> None:
        """Jump well past anything an earlier test did with a shared app (caches keyed by
        time, such as the refresh grace window, then never leak between tests)."""
        self.current = float(int(self.current + gap))

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds
