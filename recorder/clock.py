"""Time, injected: the real clock for stations, a fake one for tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Wall-clock time, UTC, in integer microseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for timeouts and watchdogs."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to (or when slept on)."""

    def __init__(self, start_us: int = 1_800_000_000_000_000) -> None:
        self.t_us = start_us
        self.mono = 1000.0

    def now_us(self) -> int:
        return self.t_us

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.t_us += int(seconds * 1_000_000)
        self.mono += seconds
