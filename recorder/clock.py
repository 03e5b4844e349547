"""Time, injected: the real clock for stations, a fake one for tests, and session time.

Session time (`SessionClock`) is the wall clock read once, at the start of a session, then
advanced by the monotonic clock: durations and the planned end never jump when the wall clock
is stepped (NTP, an operator, a dying CMOS battery), and a step is reported instead.

`IRMS_TEST_CLOCK_STEP` is for tests only: "at_s:delta_s[,at_s:delta_s...]" steps what this
process reads as the wall clock by delta_s seconds once at_s seconds have passed since the process
started (e.g. "10:3600" jumps an hour forward after 10 s, "0:-3600" runs an hour behind). It moves
only this process's reading, not the machine's clock; a station never sets it.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

from recorder.errors import ConfigError

TEST_STEP_ENV = "IRMS_TEST_CLOCK_STEP"
# Wall-clock moves smaller than this are NTP slewing or jitter, not steps.
STEP_THRESHOLD_US = 1_000_000
_PROCESS_START = time.monotonic()


class Clock(Protocol):
    def now_us(self) -> int:
        """Wall-clock time, UTC, in integer microseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for timeouts and watchdogs."""
        ...

    def sleep(self, seconds: float) -> None: ...


def parse_test_steps(text: str) -> tuple[tuple[float, int], ...]:
    """`IRMS_TEST_CLOCK_STEP`'s value as (at seconds, step µs) pairs."""
    steps = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        at, sep, delta = item.partition(":")
        try:
            if not sep:
                raise ValueError
            steps.append((float(at), round(float(delta) * 1_000_000)))
        except ValueError:
            raise ConfigError(f"{TEST_STEP_ENV}: expected at_s:delta_s, got {item!r}") from None
    return tuple(steps)


class SystemClock:
    def __init__(self) -> None:
        self._steps = parse_test_steps(os.environ.get(TEST_STEP_ENV, ""))

    def now_us(self) -> int:
        t = time.time_ns() // 1000
        if self._steps:
            age = time.monotonic() - _PROCESS_START
            t += sum(delta for at, delta in self._steps if age >= at)
        return t

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

    def step(self, seconds: float) -> None:
        """Step the wall clock only, as NTP or an operator does."""
        self.t_us += int(seconds * 1_000_000)


class SessionClock:
    """Session time: the wall clock read at `anchor()`, advanced by the monotonic clock.

    `now_us` is what the recorder stamps (records, runs, interruptions, events, the manifest), so
    their differences are true durations whatever the wall clock does; `wall_us` is the wall
    clock itself. `shift_us` moves session time forward when a restarted agent finds the wall
    clock behind what its session already holds.
    """

    def __init__(self, base: Clock) -> None:
        self.base = base
        self._wall0 = 0
        self._mono0 = 0.0
        self._skew_seen = 0
        self.shift_us = 0
        self.anchor()

    def anchor(self) -> None:
        """Session time = wall time from now on (at the start of a session)."""
        self._wall0 = self.base.now_us()
        self._mono0 = self.base.monotonic()
        self._skew_seen = 0
        self.shift_us = 0

    def now_us(self) -> int:
        return self._wall0 + round((self.base.monotonic() - self._mono0) * 1_000_000) + self.shift_us

    def wall_us(self) -> int:
        return self.base.now_us()

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def skew_us(self) -> int:
        """Wall clock minus session time."""
        return self.wall_us() - self.now_us()

    @property
    def stepped_us(self) -> int:
        """The wall clock's steps against session time seen so far (0 when none)."""
        return self._skew_seen

    def wall_step_us(self) -> int:
        """How far the wall clock stepped against session time since the last step seen; 0 if not."""
        skew = self.skew_us()
        step = skew - self._skew_seen
        if abs(step) < STEP_THRESHOLD_US:
            return 0
        self._skew_seen = skew
        return step

    def hold_from(self, floor_us: int) -> int:
        """Keep session time at or after `floor_us` (a time the session already holds); the shift added."""
        behind = floor_us - self.now_us()
        if behind <= 0:
            return 0
        self.shift_us += behind
        self._skew_seen -= behind
        return behind
