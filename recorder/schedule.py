"""The daily self-test's schedule in the station daemon (`irms-agent run`, R19).

Once a day at `selftest_at` (local time, station.toml) plus a random delay of up to `selftest_jitter_s`
(so a province's stations do not hit the store together), the daemon starts `irms-agent selftest` as a
child process. Never while a session records or is about to: when the journal holds an open session or
another agent process owns the station home (a `record` starting, the station screen), it waits
`selftest_retry_s` and asks again; a self-test refused for a busy home (exit 7) is retried the same way.
A set time that passed since the last run (the station was off then) is caught up at the next start. The result is kept
in IRMS_HOME/selftest/latest.json by the self-test itself; the next heartbeat carries it.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from recorder.errors import ConfigError, StationBusy

log = logging.getLogger(__name__)



def parse_local_time(text: str, where: str) -> dt.time:
    """"HH:MM" or "HH:MM:SS" (24 h), or one ConfigError naming the setting."""
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).time()
        except ValueError:
            continue
    raise ConfigError(f"{where} = {text!r} is not a local time HH:MM or HH:MM:SS")


def next_occurrence(after_s: float, at: dt.time) -> float:
    """The first moment strictly after `after_s` (unix s) when the local clock reads `at`."""
    day = dt.datetime.fromtimestamp(after_s).date()
    for extra in range(3):
        when = dt.datetime.combine(day + dt.timedelta(days=extra), at).timestamp()  # local time, DST aware
        if when > after_s:
            return when
    raise AssertionError("unreachable: a local time recurs every day")


def previous_occurrence(at_or_before_s: float, at: dt.time) -> float:
    """The last moment at or before `at_or_before_s` (unix s) when the local clock read `at`."""
    day = dt.datetime.fromtimestamp(at_or_before_s).date()
    for back in range(3):
        when = dt.datetime.combine(day - dt.timedelta(days=back), at).timestamp()
        if when <= at_or_before_s:
            return when
    raise AssertionError("unreachable: a local time recurs every day")


def first_due(now_s: float, at: dt.time, last_run_s: float | None) -> float:
    """When the daemon starting at `now_s` first runs the self-test (before any jitter): at once when the
    latest set time passed after the last run (the station was off then, or the time was just moved past),
    else at the next set time. A station that never ran one waits for its set time (the enrolment grace
    period covers it)."""
    if last_run_s is not None and last_run_s < previous_occurrence(now_s, at):
        return now_s
    return next_occurrence(now_s, at)


class SelftestScheduler:
    """Starts the self-test at its time, waits while the station is busy, and notes how it ended."""

    def __init__(self, at: dt.time, jitter_s: float, retry_s: float, command: list[str], log_path: Path,
                 busy: Callable[[], str | None], last_run_s: float | None, *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.at = at
        self.jitter_s = jitter_s
        self.retry_s = retry_s
        self.command = command
        self.log_path = log_path
        self.busy = busy
        self.clock = clock
        self.rng = rng or random.Random()
        self.proc: subprocess.Popen[bytes] | None = None
        self.due = first_due(clock(), at, last_run_s) + self._jitter()
        self.waited = False
        self.runs: list[int] = []
        """Exit codes of the self-tests this scheduler started (for the daemon's log and tests)."""

    def _jitter(self) -> float:
        return self.rng.uniform(0, self.jitter_s) if self.jitter_s > 0 else 0.0

    def _next(self, after_s: float) -> float:
        return next_occurrence(after_s, self.at) + self._jitter()

    def poll(self) -> float:
        """Do what is due now; the seconds until the scheduler next needs a look."""
        now = self.clock()
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return 1.0
            self._ended(code, now)
            return max(self.due - now, 0.0)
        if now < self.due:
            return self.due - now
        why = self.busy()
        if why:
            if not self.waited:
                print(f"irms-agent: self-test due but {why}; waiting", flush=True)
            self.waited = True
            self.due = now + self.retry_s
            return self.retry_s
        self.waited = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        print(f"irms-agent: daily self-test started (pid {self.proc.pid})", flush=True)
        return 1.0

    def _ended(self, code: int, now: float) -> None:
        """The self-test this scheduler started has ended with `code`: say so, and when the next one is."""
        self.proc = None
        self.runs.append(code)
        if code == StationBusy.exit_code:
            print(f"irms-agent: self-test refused: the station is busy; trying again in {self.retry_s:.0f} s",
                  flush=True)
            self.due = now + self.retry_s
        else:
            print(f"irms-agent: self-test {'passed' if code == 0 else f'failed (exit {code})'}; "
                  f"the next heartbeat carries it (log {self.log_path})", flush=True)
            self.due = self._next(now)

    def stop(self) -> None:
        """Wait for a running self-test (it owns the station home until it ends; it is never killed), and say
        how it ended: the daemon may be stopped after it ended but before the next look."""
        if self.proc is not None:
            self._ended(self.proc.wait(), self.clock())


def selftest_command(store: str, site: str, room: str, kit: str, seconds: float) -> list[str]:
    """`irms-agent selftest` as a child of this Python (so it runs the daemon's own code)."""
    return [sys.executable, "-m", "recorder.cli", "selftest", "--store", store, "--site", site, "--room", room,
            "--kit", kit, "--seconds", f"{seconds:g}", "--json"]
