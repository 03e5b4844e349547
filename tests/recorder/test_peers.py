"""The camera and microphone peers are what ffmpeg meets in the field: it records them for real,
and the flash-and-beep test signal can be measured in what it wrote.

The limits here are generous (tens of ms where the peers measured 0-4 ms) so that a loaded
two-core machine does not make them flaky; they still catch a whole-frame or whole-second slip.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.plugins.devices import CameraPeer, MicPeer

pytestmark = [pytest.mark.device, pytest.mark.slow]

CAMERA_RATE = 8000  # PCMA
MIC_RATE = 48000
FFMPEG_TIMEOUT_S = 60


def ffmpeg(*args: str, timeout: float = FFMPEG_TIMEOUT_S) -> bytes:
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                          capture_output=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout


def ffprobe(*args: str) -> str:
    done = subprocess.run(["ffprobe", "-v", "error", *args], capture_output=True, text=True,
                          timeout=FFMPEG_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def start_time(path: Path, stream: str) -> float:
    out = json.loads(ffprobe("-select_streams", stream, "-show_entries", "stream=start_time", "-of", "json",
                             str(path)))
    return float(out["streams"][0]["start_time"])


def grey_frames(path: Path, width: int, height: int) -> tuple[npt.NDArray[np.uint8], list[float]]:
    """Every decoded frame as 8-bit grey, and each frame's timestamp."""
    raw = ffmpeg("-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo",
                 "-pix_fmt", "gray", "-")
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width)
    times = [float(x) for x in ffprobe("-select_streams", "v:0", "-show_entries", "frame=pts_time",
                                       "-of", "csv=p=0", str(path)).replace(",", " ").split()]
    assert len(times) == len(frames)
    return frames, times


def frame_codes(frames: npt.NDArray[np.uint8], width: int, height: int) -> list[int]:
    """The frame number the camera peer writes in its top rows (32 blocks, MSB first, light = 1)."""
    rows = max(8, (height // 45) & ~1)
    block = width // 32
    centres = frames[:, rows // 2, block // 2::block][:, :32]
    return [int("".join("1" if v > 128 else "0" for v in row), 2) for row in centres]


def samples(path: Path, rate: int) -> npt.NDArray[np.float64]:
    raw = ffmpeg("-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", str(rate), "-")
    return np.frombuffer(raw, np.int16).astype(np.float64)


def beep_onsets(audio: npt.NDArray[np.float64], rate: int) -> list[int]:
    """Sample index where each beep starts: loud after at least 50 ms of quiet."""
    loud = np.abs(audio) > 2000
    quiet_needed = rate // 20
    onsets = []
    last_loud = 0  # a beep already sounding when the recording starts has no onset
    for i in np.flatnonzero(loud):
        if i - last_loud >= quiet_needed:
            onsets.append(int(i) - 1)  # a beep starts at sin(0) = 0, one sample before it is loud
        last_loud = int(i)
    return onsets


def beep_hz(audio: npt.NDArray[np.float64], onset: int, rate: int) -> float:
    window = audio[onset:onset + rate // 10]
    spectrum = np.abs(np.fft.rfft(window))
    return float(np.fft.rfftfreq(len(window), 1 / rate)[int(np.argmax(spectrum))])


def test_ffmpeg_records_the_camera_with_flash_and_beep_in_sync(camera_peer: CameraPeer, tmp_path: Path) -> None:
    out = tmp_path / "camera.mkv"
    began = time.monotonic()
    ffmpeg("-rtsp_transport", "tcp", "-timeout", "10000000", "-i", camera_peer.url, "-t", "3.5",
           "-map", "0", "-c:v", "copy", "-c:a", "pcm_s16le", "-f", "matroska", str(out))
    assert time.monotonic() - began < 30

    w, h, fps = camera_peer.width, camera_peer.height, camera_peer.fps
    frames, times = grey_frames(out, w, h)
    assert len(frames) >= 0.8 * 3.5 * fps, f"only {len(frames)} frames in 3.5 s"
    codes = frame_codes(frames, w, h)
    steps = np.diff(codes)
    assert (steps >= 1).all(), f"repeated or reordered frames: {codes}"
    assert int((steps != 1).sum()) <= 3, f"dropped frames: {codes}"

    flashes = [i for i in range(len(frames)) if frames[i, h // 4:].mean() > 200]
    assert len(flashes) >= 2, "no white frame on the whole seconds"
    assert all(codes[i] % fps == 0 for i in flashes), "a white frame that does not start a second"

    audio = samples(out, CAMERA_RATE)
    a0 = start_time(out, "a:0")
    onsets = beep_onsets(audio, CAMERA_RATE)
    beeps = [a0 + o / CAMERA_RATE for o in onsets]
    assert len(beeps) >= 2, "no beeps in the camera's audio"
    assert np.allclose(np.diff(beeps), 1.0, atol=0.03), f"beeps not one second apart: {beeps}"
    # a beep onset is only recognisable after 50 ms of recorded quiet, and needs its 100 ms to end
    heard = [i for i in flashes if a0 + 0.06 <= times[i] <= a0 + len(audio) / CAMERA_RATE - 0.1]
    assert heard, "no flash inside the recorded audio"
    for i in heard:
        nearest = min(beeps, key=lambda b: abs(b - times[i]))
        assert abs(nearest - times[i]) < 0.05, f"A/V offset {1000 * (nearest - times[i]):.1f} ms at flash {i}"
    # Beeps at 2 kHz on every tenth second tell whole seconds apart: check against the frame number.
    for i in heard:
        onset = min(onsets, key=lambda o: abs(a0 + o / CAMERA_RATE - times[i]))
        second_of_day = codes[i] // fps
        expected = 2000 if second_of_day % 10 == 0 else 1000
        assert beep_hz(audio, onset, CAMERA_RATE) == pytest.approx(expected, abs=30)


def test_ffmpeg_records_the_microphone_with_beeps_on_wall_clock_seconds(mic_peer: MicPeer, tmp_path: Path) -> None:
    mic_peer.control("beep")
    out = tmp_path / "mic.nut"
    # -t on the input: with -copyts an output -t would count from the epoch and end at once.
    ffmpeg("-f", "pulse", "-sample_rate", str(MIC_RATE), "-channels", "1", "-t", "3.5", "-i", mic_peer.source,
           "-copyts", "-c:a", "pcm_s16le", "-f", "nut", str(out))
    wall_start = start_time(out, "a:0")  # ffmpeg stamps pulse input with the wall clock
    audio = samples(out, MIC_RATE)
    assert len(audio) >= 3.4 * MIC_RATE, "the start of the capture was lost (idle null sink?)"
    onsets = beep_onsets(audio, MIC_RATE)
    assert len(onsets) >= 3
    for onset in onsets:
        at = wall_start + onset / MIC_RATE
        off_second = (at + 0.5) % 1.0 - 0.5
        assert abs(off_second) < 0.05, f"beep {1000 * off_second:.1f} ms off the wall-clock second"
        expected = 2000 if round(at) % 10 == 0 else 1000
        if onset + MIC_RATE // 10 <= len(audio):
            assert beep_hz(audio, onset, MIC_RATE) == pytest.approx(expected, abs=20)


def test_ffmpeg_hears_the_tone_at_minus_9_dbfs(mic_peer: MicPeer) -> None:
    raw = ffmpeg("-f", "pulse", "-sample_rate", str(MIC_RATE), "-channels", "1", "-t", "1", "-i", mic_peer.source,
                 "-f", "s16le", "-")
    audio = np.frombuffer(raw, np.int16).astype(np.float64) / 32768
    # The tone's level is the median of 100 ms windows: on a loaded machine (load 8-10 in the full suite) the
    # sound server can drop a few periods, and their silence pulled a whole-second RMS to -9.6 dBFS.
    windows = audio[: len(audio) // (MIC_RATE // 10) * (MIC_RATE // 10)].reshape(-1, MIC_RATE // 10)
    assert len(windows) >= 8, f"only {len(audio)} samples heard in 1 s"
    level = float(np.median(20 * np.log10(np.sqrt(np.mean(windows**2, axis=1)) + 1e-12)))
    assert level == pytest.approx(-9.0, abs=0.5)


def test_ffmpeg_ends_with_status_0_when_the_camera_goes_away(camera_peer: CameraPeer, tmp_path: Path) -> None:
    """Pins the trap the recorder's watchdog exists for: a lost camera looks like a normal end."""
    results = {}
    for fault in ("stop", "kill"):
        out = tmp_path / f"{fault}.ts"
        proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-rtsp_transport", "tcp",
             "-timeout", "10000000", "-i", camera_peer.url, "-t", "60", "-map", "0:v", "-c", "copy",
             "-flush_packets", "1", "-f", "mpegts", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 20
            while (not out.exists() or out.stat().st_size < 20_000) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert out.exists() and out.stat().st_size >= 20_000, "ffmpeg recorded nothing"
            if fault == "stop":
                camera_peer.stop()
            else:
                camera_peer.kill()
            results[fault] = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            assert proc.stderr is not None
            proc.stderr.close()
        if fault == "stop":
            refused = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", camera_peer.url],
                                     capture_output=True, text=True, timeout=30, check=False)
            assert refused.returncode != 0 and "404" in refused.stderr
        camera_peer.reset()  # mounted again / restarted on the same URL
        ffprobe("-rtsp_transport", "tcp", "-show_streams", camera_peer.url)
    assert results == {"stop": 0, "kill": 0}
