from __future__ import annotations

import pytest


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.current = now

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
