"""Would a circuit breaker for an identity provider turn blips into outages? (issue 23.7)

Replays refreshes against a provider that fails for a while (a blip or an outage, failing
fast or hanging until the deadline), with and without a breaker of the usual shape: open
after every call in the last ``window`` seconds failed (at least ``min_calls``), stay open
``open_seconds`` (failing at once), then let one probe through (half-open). Simulated
time, so it runs in a second and anyone can rerun it: ``python bench/circuit_breaker.py``.

Reported per scenario: failed refreshes, the last failure after the provider recovered
(how long users saw the fault past its end), and request-seconds spent waiting on a hung
provider (what a breaker could save).

Result (2026-12, the figures below): no breaker. Against a provider that fails fast, a
breaker does nothing for faults shorter than its window and makes longer ones worse: an
8 s fault gave 755 failed refreshes and 7.1 s of failures after the provider was back,
against 400 and 0 s without; 30 s: 1,757 against 1,500. Against a hung provider it only
opens once the first calls reach their deadline (10 s in), so short hangs are unchanged;
for a 30 s hang it saves request-seconds of waiting (5,040 against 15,000), which the one
deadline per refresh already bounds. A blip must stay a blip, so the server has none.

        fault   mode  breaker  failed  past end   waiting
          2 s  fails       no     100     0.00s        1s
          2 s  fails      yes     100     0.00s        1s
          8 s  fails       no     400     0.00s        2s
          8 s  fails      yes     755     7.10s        1s
         30 s  fails       no    1500     0.00s        7s
         30 s  fails      yes    1757     5.14s        1s
         30 s  hangs       no    1500     9.98s    15000s
         30 s  hangs      yes    1505     0.10s     5040s
"""

from __future__ import annotations

from dataclasses import dataclass

RATE = 50.0  # refreshes per second
DEADLINE = 10.0  # the provider timeout (one deadline per refresh)


@dataclass
class Breaker:
    window: float
    open_seconds: float
    min_calls: int = 5
    opened_at: float | None = None
    probing: bool = False

    def __post_init__(self) -> None:
        self.results: list[tuple[float, bool]] = []

    def allow(self, now: float) -> bool:
        if self.opened_at is None:
            return True
        if now - self.opened_at >= self.open_seconds and not self.probing:
            self.probing = True
            return True
        return False

    def record(self, now: float, ok: bool) -> None:
        self.probing = False
        if self.opened_at is not None:
            self.opened_at = None if ok else now
            self.results.clear()
            return
        self.results.append((now, ok))
        self.results = [(t, r) for t, r in self.results if now - t <= self.window]
        if len(self.results) >= self.min_calls and not any(r for _, r in self.results):
            self.opened_at = now


def run(fault: float, hangs: bool, breaker: Breaker | None) -> tuple[int, float, float]:
    """(failed refreshes, fault visible past its end (s), request-seconds spent waiting)."""
    start, end = 10.0, 10.0 + fault
    failed, last_failure, waiting = 0, 0.0, 0.0
    pending: list[tuple[float, float, bool]] = []  # (done at, started, ok)
    steps = int(60 * RATE)
    for i in range(steps):
        now = i / RATE
        for done in [p for p in pending if p[0] <= now]:
            pending.remove(done)
            if breaker is not None:
                breaker.record(done[0], done[2])
        if breaker is not None and not breaker.allow(now):
            failed += 1
            last_failure = now
            continue
        down = start <= now < end
        latency = (DEADLINE if hangs else 0.005) if down else 0.05
        ok = not down
        if not ok:
            failed += 1
            last_failure = now + latency
            waiting += latency
        pending.append((now + latency, now, ok))
    return failed, max(0.0, last_failure - end), waiting


def main() -> None:
    print(f"{RATE:g} refreshes/s, deadline {DEADLINE:g} s; breaker: window 5 s, open 10 s")
    print(f"{'fault':>12} {'mode':>6} {'breaker':>8} {'failed':>7} {'past end':>9} {'waiting':>9}")
    for fault in (0.5, 2.0, 8.0, 30.0):
        for hangs in (False, True):
            for with_breaker in (False, True):
                breaker = Breaker(window=5.0, open_seconds=10.0) if with_breaker else None
                failed, past, waiting = run(fault, hangs, breaker)
                mode = "hangs" if hangs else "fails"
                print(
                    f"{fault:>10g} s {mode:>6} {'yes' if with_breaker else 'no':>8} "
                    f"{failed:>7} {past:>8.2f}s {waiting:>8.0f}s"
                )


if __name__ == "__main__":
    main()
