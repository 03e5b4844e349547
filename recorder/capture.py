"""The capture loop: runs of ffmpeg started, watched, restarted with back-off, or given up on.

One home for the policy around the capture process: the watchdog (no new segment for
`watchdog_s` → kill → `device_lost`), ffmpeg exiting by itself (`device_lost`, whatever its
exit code), the restart back-off, and the dead-device rule (`device_failure`). The
`ProcessSupervisor` owns the process itself; the `Recorder` (the `CaptureHost`) keeps what a
session means: the journal, interruptions, events, sealing, pauses and a full disk. The
decisions are pure functions, tested without ffmpeg (tests/recorder/test_capture.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from recorder.clock import Clock
from recorder.errors import disk_full
from recorder.journal import RunRow
from recorder.private_input import PROBE_NOISE
from recorder.supervisor import ProcessSupervisor

log = logging.getLogger(__name__)

# A session without any segment is a dead device after this many failed runs (and watchdog_s).
DEAD_AFTER_RUNS = 3
# ffmpeg's rate-control chatter, never the reason a run ended.
NOISE = ("Too many bits", *PROBE_NOISE)


def backoff_delay(schedule: Sequence[float], restarts: int) -> float:
    """The wait before the restart that follows `restarts` earlier ones: the schedule, then its last step."""
    return schedule[min(restarts, len(schedule) - 1)]


def stalled(now_s: float, last_progress_s: float, watchdog_s: float) -> bool:
    """The watchdog: no new segment for more than `watchdog_s` (monotonic seconds)."""
    return now_s - last_progress_s > watchdog_s


def dead_device(has_media: bool, failed_runs: int, trying_s: float, watchdog_s: float) -> bool:
    """The devices never delivered a segment of the session in three runs and the watchdog's time.

    Both bounds: a busy station slow to start its first run is not a dead device.
    """
    return not has_media and failed_runs >= DEAD_AFTER_RUNS and trying_s > watchdog_s


def session_ending(stop: bool, now_us: int, until_us: int | None) -> str | None:
    """Between runs: whether the session ends (a stop request first, then the planned end)."""
    if stop:
        return "stopped"
    if until_us is not None and now_us >= until_us:
        return "duration_reached"
    return None


def run_ending(stop: bool, pause: bool, now_us: int, until_us: int | None) -> str | None:
    """During a run: why capture is stopped now, if it is (stop, then pause, then the planned end)."""
    if stop:
        return "stopped"
    if pause:
        return "pause"
    if until_us is not None and now_us >= until_us:
        return "duration_reached"
    return None


def failure_detail(returncode: int | None, stderr_tail: Iterable[str]) -> tuple[str, str]:
    """What a run that ended by itself says: (the interruption's detail, ffmpeg's last error or the exit)."""
    errors = [ln for ln in stderr_tail if not any(n in ln for n in NOISE)]
    exited = f"capture ended by itself (ffmpeg exit {returncode})"
    if not errors:
        return exited, exited
    return f"{exited}: {errors[-1]}", errors[-1]


class CaptureHost(Protocol):
    """What the capture loop asks of the session it captures for (the `Recorder`)."""

    def prepare_run(self, sid: str) -> tuple[RunRow, ProcessSupervisor]:
        """Journal a new run and give its (not yet started) ffmpeg supervisor."""
        ...

    def poll_run(self, sid: str, run: RunRow) -> tuple[RunRow, bool]:
        """Take in what the run finished; the run as journaled now, and whether a new segment came."""
        ...

    def capture_stopping(self, sid: str, reason: str) -> None:
        """Capture is about to be stopped on purpose (stop, pause, planned end)."""
        ...

    def end_run(self, sid: str, run: RunRow, cause: str) -> None:
        """The run's ffmpeg is gone: collect what it left and journal the run's end."""
        ...

    def run_failed(self, sid: str, cause: str, detail: str) -> None:
        """A run ended without being told to: declare the time without media."""
        ...

    def has_media(self, sid: str) -> bool:
        """Whether the session holds any segment."""
        ...

    def wait_paused(self, sid: str) -> bool:
        """Hold the pause until resumed; False if the session was stopped meanwhile."""
        ...

    def disk_filled(self, sid: str, err: BaseException) -> str:
        """A write failed on a full disk: note it; returns what to log."""
        ...

    def wait_for_space(self, sid: str, run: RunRow | None, until_us: int | None) -> str | None:
        """Wait for room, declare the gap; the session's end reason if it ended meanwhile."""
        ...


class CaptureLoop:
    """Runs capture for a session until it ends: one ffmpeg run after another, through the supervisor."""

    def __init__(self, host: CaptureHost, clock: Clock, *, stop: threading.Event, pause: threading.Event,
                 watchdog_s: float, restart_backoff_s: Sequence[float]) -> None:
        self.host = host
        self.clock = clock
        self.stop = stop
        self.pause = pause
        self.watchdog_s = watchdog_s
        self.restart_backoff_s = tuple(restart_backoff_s)
        # The running ffmpeg, if any (the recorder reads its stderr for write errors).
        self.supervisor: ProcessSupervisor | None = None
        # What ffmpeg last said when the session ended as device_failure.
        self.failure = ""

    def start(self, sup: ProcessSupervisor) -> None:
        """Start a run's ffmpeg; it is the running one until its run ends."""
        sup.start()
        self.supervisor = sup

    def run(self, sid: str, until_us: int | None) -> str:
        """Capture until `until_us` or a stop request; returns the session's end reason.

        `device_failure` when the devices never delivered a segment (`dead_device`): retrying for
        the whole planned length would only hide it. `failure` then says what ffmpeg last reported.
        """
        self.failure = ""
        restarts = 0
        failed_runs = 0
        first_try = self.clock.monotonic()
        while True:
            ending = session_ending(self.stop.is_set(), self.clock.now_us(), until_us)
            if ending:
                return ending
            if self.pause.is_set():
                if not self.host.wait_paused(sid):
                    return "stopped"
                continue
            try:
                run, sup = self.host.prepare_run(sid)
                self.start(sup)
            except (OSError, sqlite3.Error) as err:
                if not disk_full(err):
                    raise
                self.host.disk_filled(sid, err)
                ending = self.host.wait_for_space(sid, None, until_us)
                if ending:
                    return ending
                continue
            outcome = self._watch(sid, run, sup, until_us)
            if outcome in ("stopped", "duration_reached"):
                return outcome
            if outcome == "store_full":
                ending = self.host.wait_for_space(sid, run, until_us)
                if ending:
                    return ending
                restarts = 0
                continue
            if outcome == "pause":
                restarts = 0
                continue
            if self.pause.is_set():
                continue  # the run ended while a pause was being requested
            detail, last_error = failure_detail(sup.returncode(), sup.stderr_tail)
            self.host.run_failed(sid, outcome, detail[:500])
            failed_runs += 1
            if dead_device(self.host.has_media(sid), failed_runs, self.clock.monotonic() - first_try,
                           self.watchdog_s):
                self.failure = last_error
                log.error("session %s: no media from the devices in %.0f s: %s", sid, self.watchdog_s,
                          self.failure)
                return "device_failure"
            log.warning("session %s: %s (%s); restarting capture", sid, outcome, detail)
            self._back_off(backoff_delay(self.restart_backoff_s, restarts))
            restarts += 1

    def _back_off(self, delay: float) -> None:
        deadline = self.clock.monotonic() + delay
        while self.clock.monotonic() < deadline and not self.stop.is_set():
            self.clock.sleep(0.05)

    def _watch(self, sid: str, run: RunRow, sup: ProcessSupervisor, until_us: int | None) -> str:
        """Watch one run to its end; `store_full` when the disk filled (ffmpeg is killed, nothing journaled)."""
        try:
            return self._watch_run(sid, run, sup, until_us)
        except (OSError, sqlite3.Error) as err:
            if not disk_full(err):
                raise
            log.warning("session %s: %s; capture stops until there is room", sid, self.host.disk_filled(sid, err))
            sup.kill()
            self.supervisor = None
            return "store_full"

    def _watch_run(self, sid: str, run: RunRow, sup: ProcessSupervisor, until_us: int | None) -> str:
        last_progress = self.clock.monotonic()
        while True:
            run, progressed = self.host.poll_run(sid, run)
            if progressed:
                last_progress = self.clock.monotonic()
            reason = run_ending(self.stop.is_set(), self.pause.is_set(), self.clock.now_us(), until_us)
            if reason:
                self.host.capture_stopping(sid, reason)
                sup.stop()
                self._end_run(sid, run, reason)
                return reason
            if not sup.alive():
                # ffmpeg exits 0 when a camera disappears: the exit code does not mean "finished".
                sup.stop()  # reaps it and reads its stderr to the end, so its last error is known
                self._end_run(sid, run, "device_lost")
                return "device_lost"
            if stalled(self.clock.monotonic(), last_progress, self.watchdog_s):
                log.warning("no new segment for %.0f s: capture stalled", self.watchdog_s)
                sup.kill()
                self._end_run(sid, run, "device_lost")
                return "device_lost"
            # Until the run's first segment exists its origin is unknown: look often.
            self.clock.sleep(0.02 if run.t0_us is None else 0.25)

    def _end_run(self, sid: str, run: RunRow, cause: str) -> None:
        self.host.end_run(sid, run, cause)
        self.supervisor = None
