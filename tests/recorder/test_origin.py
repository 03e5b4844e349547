"""A camera-timed run's origin (recorder.origin): the soonest sound frame, once frames arrive in real time.

These feed RunOrigin the lines ffmpeg prints, at the times a run on the camera peer printed them (the
shape measured in recorder/origin.py's docstring): a burst of frames ffmpeg held while it probed,
then one frame each 20 ms. The real ffmpeg and camera are in test_live_capture.py.
"""

from __future__ import annotations

from pathlib import Path

from recorder.origin import STEADY, RunOrigin
from recorder.segmenter import ORIGIN_WINDOW_S
from recorder.supervisor import ProcessSupervisor


def line(n: int, pts_s: float) -> str:
    return (f"[Parsed_ashowinfo_2 @ 0x55d0c1a3e2c0] [info] n:{n} pts:{round(pts_s * 8000)} pts_time:{pts_s:.6g} pos:-1 "
            "fmt:s16 channels:1 chlayout:mono rate:8000 nb_samples:160 checksum:3D5A1C22 plane_checksums: [ 3D5A1C22 ]")


class Feeder:
    def __init__(self, latency_ms: int = 60) -> None:
        self.now = 0
        self.origin = RunOrigin(lambda: self.now, latency_ms)
        self.n = 0

    def frame(self, at_us: int, pts_s: float) -> bool:
        self.now = at_us
        self.n += 1
        return self.origin.feed(line(self.n, pts_s))


LAUNCH = 1_796_035_522_000_000
TRUE_ORIGIN = LAUNCH - 886_000  # list time 0 (the camera's 0 + the lead) arrives here, plus jitter


def test_the_burst_is_not_taken_for_the_origin_and_the_soonest_steady_frame_is() -> None:
    f = Feeder(latency_ms=60)
    # ffmpeg probed for about 1 s: the first 45 frames (pts 1.02 .. 1.90) come out together at launch + 1.02 s,
    # once the last of them has come (a frame cannot be read before it arrives).
    for i in range(45):
        f.frame(LAUNCH + 1_020_000 + i * 50, 1.02 + i * 0.02)
        assert f.origin.t0_us() is None  # a burst is not real time: not yet known
    # then one frame every 20 ms, each a few ms late, one of them only 1 ms late
    jitter = [3, 5, 2, 7, 4, 1, 6, 3, 2, 5] * 5
    for k, late_ms in enumerate(jitter[:STEADY]):
        pts = 1.92 + k * 0.02
        assert f.frame(TRUE_ORIGIN + round(pts * 1e6) + late_ms * 1000, pts)
    assert f.origin.t0_us() == TRUE_ORIGIN + 1000 - 60_000  # the soonest frame, less the camera's latency


def test_other_lines_are_left_for_the_log() -> None:
    f = Feeder()
    assert not f.origin.feed("[segment @ 0x55d0c1a3e2c0] Opening 'seg000001.ts' for writing")
    assert not f.origin.feed("Stream mapping:")
    assert f.origin.t0_us(final=True) is None  # no frame came: nothing to say


def test_a_run_that_ends_in_its_burst_still_gets_the_best_it_saw() -> None:
    f = Feeder(latency_ms=0)
    for i in range(10):
        f.frame(LAUNCH + 1_500_000 + i * 30, 1.02 + i * 0.02)
    assert f.origin.t0_us() is None
    assert f.origin.t0_us(final=True) == LAUNCH + 1_500_000 + 9 * 30 - round(1.2 * 1e6)


def test_a_window_that_never_steadies_ends_with_its_least() -> None:
    """A station so loaded that frames never come at their own pace: once the printed window is over,
    the least seen is the answer, and capture goes on."""
    f = Feeder(latency_ms=0)
    at = LAUNCH
    pts = 1.0
    while pts < 1.0 + ORIGIN_WINDOW_S:
        at += 10_000  # twice as fast as real time, in bursts: never steady
        f.frame(at, pts)
        pts += 0.02
    assert f.origin.t0_us() == min(LAUNCH + 10_000 * (k + 1) - round((1.0 + 0.02 * k) * 1e6)
                                   for k in range(f.n))


def test_the_supervisor_gives_each_line_to_the_watch_and_keeps_only_problems(tmp_path: Path) -> None:
    """A real child printing as ffmpeg does with `-loglevel level+info`: its timing lines go to the watch,
    its progress (info) nowhere, its warnings and errors to the log and the tail without their tags."""
    f = Feeder()
    lines = [line(1, 1.02), "[info] Stream mapping:", "[segment @ 0x55d0c1a3e2c0] [info] Opening 'seg000001.ts'",
             "[rtsp @ 0x55d0c1a3e2c0] [error] method DESCRIBE failed: 404 Not Found", "[warning] a warning",
             "an untagged line"]
    script = "import sys\n" + "".join(f"print({x!r}, file=sys.stderr)\n" for x in lines)
    sup = ProcessSupervisor("child", ["python3", "-c", script], cwd=tmp_path, log_path=tmp_path / "child.log",
                            watch=f.origin.feed)
    sup.start()
    assert sup.proc is not None
    sup.proc.wait(10)
    sup.stop()
    kept = ["[rtsp @ 0x55d0c1a3e2c0] method DESCRIBE failed: 404 Not Found", "a warning", "an untagged line"]
    assert (tmp_path / "child.log").read_text().splitlines() == kept
    assert list(sup.stderr_tail) == kept
    assert f.origin.t0_us(final=True) is not None
