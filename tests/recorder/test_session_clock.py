"""Session time follows the monotonic clock; wall-clock steps are reported, never followed."""

from __future__ import annotations

import pytest

from recorder.clock import TEST_STEP_ENV, FakeClock, SessionClock, SystemClock
from recorder.errors import ConfigError


def test_a_wall_clock_step_is_reported_once_and_session_time_does_not_jump() -> None:
    base = FakeClock()
    clock = SessionClock(base)
    start = clock.now_us()
    base.advance(8)
    base.step(3600)
    assert clock.now_us() - start == 8_000_000
    assert clock.wall_step_us() == 3_600_000_000
    assert clock.wall_step_us() == 0  # seen
    assert clock.stepped_us == 3_600_000_000
    base.advance(0.5)
    base.step(0.2)  # slewing and jitter are not steps
    assert clock.wall_step_us() == 0
    assert clock.now_us() - start == 8_500_000


def test_hold_from_keeps_session_time_after_what_a_session_already_holds() -> None:
    base = FakeClock()
    clock = SessionClock(base)
    floor = clock.now_us() + 5_000_000
    assert clock.hold_from(floor) == 5_000_000
    assert clock.now_us() == floor
    assert clock.hold_from(floor - 1) == 0
    clock.anchor()  # a new session: wall time again
    assert clock.now_us() == base.now_us()


def test_the_test_only_clock_step_moves_this_process_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_STEP_ENV, "0:-3600")
    real = SystemClock.__new__(SystemClock)
    real._steps = ()
    assert abs(SystemClock().now_us() - (real.now_us() - 3_600_000_000)) < 1_000_000
    monkeypatch.setenv(TEST_STEP_ENV, "soon")
    with pytest.raises(ConfigError, match="expected at_s:delta_s"):
        SystemClock()
