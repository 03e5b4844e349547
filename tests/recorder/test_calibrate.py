"""Flash-and-beep measurement on files made with ffmpeg: exact, no timing luck.

A live RTSP camera's frames carry their arrival times: after a backlog they come in a burst,
and after a calibration they sit just beside the frame grid of the whole seconds. These files
reproduce both, with the flash and the beep at known times, so the measured offset is known.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from recorder.calibrate import Offset, combine, flash_beep_pairs, flash_times, measure, pair_offsets, video_luma

ORIGIN_S = 10.0  # wall clock − t0 of the file's first frame
# Frames 31-33 arrive late and together, as an RTSP backlog drains (times after the origin).
BURST = {31: 1.3679, 32: 1.3780, 33: 1.3781}


def flash_and_beep(path: Path, picture_late_s: float, seconds: int = 5) -> Path:
    """25 fps with a white frame on every whole second, shown `picture_late_s` after its beep."""
    when = f"N*0.04+{picture_late_s}"
    for n, t in sorted(BURST.items(), reverse=True):
        when = f"if(eq(N\\,{n})\\,{t}\\,{when})"
    video = (f"color=c=gray:s=64x36:r=25:d={seconds},"
             "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n\\,25)\\,0)',"
             f"settb=1/90000,setpts='({ORIGIN_S}+{when})/TB'")
    audio = (f"aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000:d={seconds},"
             f"asetpts=PTS+{ORIGIN_S}/TB")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
         "-map", "0:v", "-map", "1:a", "-copyts", "-muxdelay", "0", "-fps_mode", "passthrough",
         "-enc_time_base", "1/90000", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
         "-c:a", "aac", "-f", "mpegts", str(path)],
        check=True, capture_output=True, timeout=60,
    )
    return path


@pytest.mark.parametrize("picture_late_ms", [-0.5, 1.0, 19.5, 21.0])
def test_each_flash_keeps_its_own_frame_time_after_a_burst(tmp_path: Path, picture_late_ms: float) -> None:
    """Every frame phase, a burst of late frames before: the flashes are on the second + the lateness."""
    path = flash_and_beep(tmp_path / "flash.ts", picture_late_ms / 1000)
    times, luma = video_luma(path)
    assert len(times) == len(luma) == 125
    flashes = flash_times(times, luma)
    expected = [ORIGIN_S + s + picture_late_ms / 1000 for s in (1, 2, 3, 4)]
    assert flashes == pytest.approx(expected, abs=0.0002), flashes


@pytest.mark.parametrize("picture_late_ms", [-0.5, 21.0])
def test_measured_offset_is_the_picture_lateness(tmp_path: Path, picture_late_ms: float) -> None:
    offset = measure(flash_and_beep(tmp_path / "flash.ts", picture_late_ms / 1000), settle_s=0.5)
    assert offset.pairs == 4
    assert offset.offset_ms == pytest.approx(picture_late_ms, abs=2.0), offset


def test_one_late_pair_does_not_move_the_offset() -> None:
    """A flash read 147 ms late and a beep 24 ms late on a loaded station: the median holds."""
    flashes = [2.020, 3.028, 4.167, 5.020, 6.020, 7.020]
    beeps = [1.999, 2.999, 3.999, 5.023, 5.999, 6.999]
    offset = pair_offsets(flashes, beeps)
    assert offset.pairs == 6
    assert offset.offset_ms == pytest.approx(21.0, abs=0.01)
    assert offset.spread_ms == pytest.approx(4.0, abs=0.01)  # deviations 0 0 0 8 24 147


def test_several_recordings_give_the_median_of_their_offsets() -> None:
    """Each recording is its own connection, a couple of milliseconds apart: the median of three."""
    runs = [Offset(23.0, 0.4, 7), Offset(24.9, 0.3, 6), Offset(21.1, 0.5, 7)]
    combined = combine(runs)
    assert combined.offset_ms == 23.0 and combined.pairs == 20
    assert combined.spread_ms == pytest.approx(1.9)
    assert combine(runs[:1]) == runs[0]


def test_each_pair_keeps_its_time_for_a_long_recording() -> None:
    """bench/long_recording.py reads every second's pair: the flash's time and flash − beep, unmatched left out."""
    flashes = [2.003, 3.004, 4.280, 7.010]
    beeps = [6.0, 1.0, 2.0, 3.0, 4.0]  # any order; no beep near 7 s
    pairs = flash_beep_pairs(flashes, beeps)
    assert [t for t, _ in pairs] == [2.003, 3.004, 4.280]
    assert [round(d, 3) for _, d in pairs] == [3.0, 4.0, 280.0]
    assert flash_beep_pairs(flashes, []) == []
