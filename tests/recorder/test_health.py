"""Health judging of a recorded segment, on 2 s segments made with ffmpeg the way the recorder
encodes them (H.264 + AAC in MPEG-TS): every watched fault found, a good segment passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from recorder.health import WATCHED, HealthMonitor, decode_segment, judge_segment

SIZE = (1280, 720)
PICTURES = {
    "moving": "testsrc2=size=1280x720:rate=25",
    "black": "color=c=black:size=1280x720:rate=25",
    "frozen": "testsrc2=size=1280x720:rate=25:duration=0.04,loop=loop=80:size=1",
    "covered": "color=c=0x464646:size=1280x720:rate=25",
}
SOUNDS = {
    "tone": "sine=frequency=1000:sample_rate=48000",
    "silent": "anullsrc=channel_layout=mono:sample_rate=48000",
    "clipping": "aevalsrc='0.999*sgn(sin(2*PI*440*t))':sample_rate=48000",
}


def segment(path: Path, picture: str, sound: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", PICTURES[picture], "-f", "lavfi",
         "-i", SOUNDS[sound], "-t", "2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "28",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", str(path)],
        check=True, capture_output=True, timeout=60,
    )
    return path


def failing(path: Path) -> set[str]:
    return {r.check for r in judge_segment(path, SIZE, has_audio=True) if not r.ok and r.check in WATCHED}


@pytest.mark.parametrize(("picture", "sound", "expected"), [
    ("moving", "tone", set()),
    ("black", "tone", {"camera.black", "camera.frozen", "camera.covered"}),  # black is flat and still too
    ("frozen", "tone", {"camera.frozen"}),
    ("covered", "tone", {"camera.covered", "camera.frozen"}),
    ("moving", "silent", {"mic.silent"}),
    ("moving", "clipping", {"mic.clipping"}),
])
def test_each_fault_is_found(tmp_path: Path, picture: str, sound: str, expected: set[str]) -> None:
    assert failing(segment(tmp_path / "seg.ts", picture, sound)) == expected


def test_six_frames_from_the_start_and_all_the_sound(tmp_path: Path) -> None:
    decoded = decode_segment(segment(tmp_path / "seg.ts", "moving", "tone"))
    assert len(decoded.frames) == 6 and decoded.frames[0].shape == (720, 1280)
    assert decoded.rate == 48000 and decoded.samples.size / 48000 == pytest.approx(2.0, abs=0.05)


def test_monitor_reports_a_fault_once_and_its_recovery_and_counts_its_cpu(tmp_path: Path) -> None:
    black = segment(tmp_path / "black.ts", "black", "tone")
    good = segment(tmp_path / "good.ts", "moving", "tone")
    monitor = HealthMonitor(SIZE, every_s=0.0)
    first = monitor.check(black, 1, 2_000_000)
    assert ("health", "camera.black: mean luma 0.0, below 20: the picture is black") in first
    assert not [e for e in monitor.check(black, 2, 2_000_000) if e[0] == "health"]  # said once
    recovered = monitor.check(good, 3, 2_000_000)
    assert {d.split(":")[0] for kind, d in recovered if kind == "health_ok"} >= {"camera.black"}
    assert monitor.checks == 3 and 0 < monitor.cpu_s < 5
    # The self-test's verdict keeps the fault even though the last segment was good.
    assert not next(r for r in monitor.clip_results() if r.check == "camera.black").ok


def test_a_recording_judges_no_focus_and_the_self_test_does(tmp_path: Path) -> None:
    """The focus is not a health event while recording (not watched), so it is not computed there; the
    self-test's verdict has it (selftest.py sets `focus`)."""
    good = segment(tmp_path / "good.ts", "moving", "tone")
    recording = HealthMonitor(SIZE, every_s=0.0)
    assert recording.check(good, 1, 2_000_000) == []
    assert "camera.focus" not in {r.check for r in recording.clip_results()}
    judged = {r.check for r in recording.clip_results()}
    assert {"camera.black", "camera.frozen", "camera.covered", "mic.silent"} <= judged
    selftest = HealthMonitor(SIZE, every_s=0.0, focus=True)
    selftest.check(good, 1, 2_000_000)
    assert next(r for r in selftest.clip_results() if r.check == "camera.focus").ok
