"""The capture loop's policy: back-off, watchdog, dead device, full disk; real child processes, no ffmpeg.

The loop drives real processes through the `ProcessSupervisor` (`sh` standing for a camera that
dies, `sleep` for one that stalls); the host records what the loop tells the session. The
real-agent tests (test_faults*.py, test_live_capture.py, test_pause.py) cover the same path with
ffmpeg and the journal.
"""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pytest

from recorder.capture import (
    CaptureLoop,
    backoff_delay,
    dead_device,
    failure_detail,
    run_ending,
    session_ending,
    stalled,
)
from recorder.clock import SystemClock
from recorder.journal import RunRow
from recorder.supervisor import ProcessSupervisor

SID = "0" * 32
DEAD_CAMERA = "rtsp://cam.invalid:554/live: Connection refused"


# --- the pure decisions -------------------------------------------------------

def test_backoff_follows_the_schedule_then_holds_its_last_step() -> None:
    schedule = (0.5, 1.0, 2.0)
    assert [backoff_delay(schedule, i) for i in range(6)] == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert backoff_delay((3.0,), 0) == backoff_delay((3.0,), 9) == 3.0


def test_the_watchdog_fires_only_after_more_than_watchdog_s_without_a_segment() -> None:
    assert not stalled(110.0, 100.0, 10.0)
    assert stalled(110.001, 100.0, 10.0)
    assert not stalled(100.5, 100.0, 10.0)


@pytest.mark.parametrize(("has_media", "failed_runs", "trying_s", "dead"), [
    (False, 3, 10.5, True),    # a dead camera at the start
    (False, 2, 60.0, False),   # two tries are not enough, however long
    (False, 5, 9.0, False),    # a busy station failing fast: not yet the watchdog's time
    (False, 3, 10.0, False),   # the bound is strict
    (True, 9, 600.0, False),   # a device lost mid-session is retried to the planned end
])
def test_a_dead_device_is_three_failed_runs_and_the_watchdogs_time_without_any_segment(
        has_media: bool, failed_runs: int, trying_s: float, dead: bool) -> None:
    assert dead_device(has_media, failed_runs, trying_s, 10.0) is dead


def test_a_run_stops_for_a_stop_then_a_pause_then_the_planned_end() -> None:
    assert run_ending(True, True, 10, 5) == "stopped"
    assert run_ending(False, True, 10, 5) == "pause"
    assert run_ending(False, False, 10, 5) == "duration_reached"
    assert run_ending(False, False, 4, 5) is None
    assert run_ending(False, False, 10**18, None) is None


def test_between_runs_a_stop_wins_over_the_planned_end() -> None:
    assert session_ending(True, 10, 5) == "stopped"
    assert session_ending(False, 5, 5) == "duration_reached"
    assert session_ending(False, 4, 5) is None
    assert session_ending(False, 10, None) is None


def test_a_failed_run_quotes_ffmpegs_last_error_never_its_rate_control_chatter() -> None:
    detail, last = failure_detail(0, ["Input #0", DEAD_CAMERA, "[libx264] Too many bits"])
    assert detail == f"capture ended by itself (ffmpeg exit 0): {DEAD_CAMERA}"
    assert last == DEAD_CAMERA
    assert failure_detail(1, []) == ("capture ended by itself (ffmpeg exit 1)",) * 2


# --- the loop, with real processes ------------------------------------------

class Host:
    """A session as the capture loop sees it; records every call, in order."""

    def __init__(self, tmp: Path, argv: list[str], *, media: bool = False, progress: bool = False) -> None:
        self.tmp = tmp
        self.argv = argv
        self.media = media
        self.progress = progress
        self.calls: list[tuple[str, str]] = []
        self.starts: list[float] = []
        self.sups: list[ProcessSupervisor] = []
        self.poll_error: OSError | None = None
        self.on_failed: threading.Event | None = None
        self.stop_after_failures = 0

    def prepare_run(self, sid: str) -> tuple[RunRow, ProcessSupervisor]:
        n = len(self.sups)
        self.starts.append(time.monotonic())
        sup = ProcessSupervisor(f"child-run{n}", self.argv, cwd=self.tmp)
        self.sups.append(sup)
        now = time.time_ns() // 1000
        return RunRow(sid, n, str(self.tmp), now, now, None), sup

    def poll_run(self, sid: str, run: RunRow) -> tuple[RunRow, bool]:
        if self.poll_error is not None:
            raise self.poll_error
        return run, self.progress

    def capture_stopping(self, sid: str, reason: str) -> None:
        self.calls.append(("capture_stop", reason))

    def end_run(self, sid: str, run: RunRow, cause: str) -> None:
        self.calls.append(("end_run", cause))

    def run_failed(self, sid: str, cause: str, detail: str) -> None:
        self.calls.append(("run_failed", f"{cause}: {detail}"))
        if self.on_failed is not None and sum(c[0] == "run_failed" for c in self.calls) >= self.stop_after_failures:
            self.on_failed.set()

    def has_media(self, sid: str) -> bool:
        return self.media

    def wait_paused(self, sid: str) -> bool:
        self.calls.append(("wait_paused", ""))
        return False

    def disk_filled(self, sid: str, err: BaseException) -> str:
        self.calls.append(("disk_filled", str(err)))
        return f"no space left: {err}"

    def wait_for_space(self, sid: str, run: RunRow | None, until_us: int | None) -> str | None:
        self.calls.append(("wait_for_space", "run" if run is not None else "no run"))
        return "stopped"


def loop_for(host: Host, *, watchdog_s: float, backoff: tuple[float, ...] = (0.05, 0.1, 0.2)) -> CaptureLoop:
    return CaptureLoop(host, SystemClock(), stop=threading.Event(), pause=threading.Event(),
                       watchdog_s=watchdog_s, restart_backoff_s=backoff)


def test_a_camera_dead_from_the_start_ends_as_device_failure_quoting_its_last_error(tmp_path: Path) -> None:
    host = Host(tmp_path, ["sh", "-c", f"echo '{DEAD_CAMERA}' >&2; exit 0"])
    loop = loop_for(host, watchdog_s=0.3)
    t0 = time.monotonic()
    assert loop.run(SID, None) == "device_failure"
    assert time.monotonic() - t0 > 0.3
    assert loop.failure == DEAD_CAMERA
    failed = [c for c in host.calls if c[0] == "run_failed"]
    assert len(failed) >= 3
    assert failed[0] == ("run_failed", f"device_lost: capture ended by itself (ffmpeg exit 0): {DEAD_CAMERA}")
    assert [c for c in host.calls if c[0] == "end_run"] == [("end_run", "device_lost")] * len(failed)
    # Restarts wait the back-off schedule: 0.05, 0.1, 0.2 s.
    gaps = [b - a for a, b in zip(host.starts, host.starts[1:], strict=False)]
    assert all(g >= d - 0.005 for g, d in zip(gaps, (0.05, 0.1, 0.2, 0.2, 0.2), strict=False)), gaps
    assert loop.supervisor is None


def test_a_device_lost_mid_session_is_retried_never_given_up(tmp_path: Path) -> None:
    host = Host(tmp_path, ["sh", "-c", "exit 1"], media=True)
    loop = loop_for(host, watchdog_s=0.05, backoff=(0.01,))
    host.on_failed, host.stop_after_failures = loop.stop, 6
    assert loop.run(SID, None) == "stopped"
    assert sum(c[0] == "run_failed" for c in host.calls) == 6
    assert loop.failure == ""


def test_the_watchdog_kills_a_run_that_delivers_no_segment(tmp_path: Path) -> None:
    host = Host(tmp_path, ["sleep", "30"], media=True)
    loop = loop_for(host, watchdog_s=0.5)
    host.on_failed, host.stop_after_failures = loop.stop, 1
    t0 = time.monotonic()
    assert loop.run(SID, None) == "stopped"
    assert 0.5 < time.monotonic() - t0 < 10
    assert host.sups[0].returncode() == -9  # killed, not asked
    assert host.calls[:2] == [("end_run", "device_lost"),
                              ("run_failed", "device_lost: capture ended by itself (ffmpeg exit -9)")]


def test_a_run_that_delivers_segments_is_stopped_at_the_planned_end_not_by_the_watchdog(tmp_path: Path) -> None:
    host = Host(tmp_path, ["sleep", "30"], progress=True)
    loop = loop_for(host, watchdog_s=0.3)
    until = time.time_ns() // 1000 + 1_500_000
    assert loop.run(SID, until) == "duration_reached"
    assert host.calls == [("capture_stop", "duration_reached"), ("end_run", "duration_reached")]
    assert host.sups[0].returncode() == -2  # asked with SIGINT, so ffmpeg closes its segment
    assert len(host.sups) == 1


def test_a_full_disk_while_watching_kills_the_run_and_waits_for_space(tmp_path: Path) -> None:
    host = Host(tmp_path, ["sleep", "30"], media=True)
    host.poll_error = OSError(errno.ENOSPC, "No space left on device")
    loop = loop_for(host, watchdog_s=5)
    assert loop.run(SID, None) == "stopped"
    assert host.sups[0].returncode() == -9
    assert [c[0] for c in host.calls] == ["disk_filled", "wait_for_space"]
    assert host.calls[1] == ("wait_for_space", "run")
    assert loop.supervisor is None


def test_a_pause_request_hands_the_pause_to_the_session_before_any_run(tmp_path: Path) -> None:
    host = Host(tmp_path, ["sleep", "30"])
    loop = loop_for(host, watchdog_s=5)
    loop.pause.set()
    assert loop.run(SID, None) == "stopped"  # the host's pause was ended by a stop
    assert host.calls == [("wait_paused", "")]
    assert host.sups == []
