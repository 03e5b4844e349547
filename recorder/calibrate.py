"""Flash-and-beep calibration: how late a camera's picture arrives against a microphone.

A flash (a white frame) and a beep start at the same instant: the camera peer and a
calibration card flash on every whole second while the microphone hears a beep on the
same second. In a recording of both on one wall clock, the flash lands `latency` after
the beep; that latency is written to the station's configuration and subtracted from
the camera's timestamps in every later recording (R18, TEST_ENVIRONMENT.md).
"""

from __future__ import annotations

import bisect
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recorder.clock import Clock, SystemClock
from recorder.errors import CaptureError, ConfigError
from recorder.profile import Profile
from recorder.segmenter import build_argv, camera_script_names, camera_scripts, is_live
from recorder.supervisor import ProcessSupervisor

# One showinfo line per decoded frame: its time and the mean of its (grey) picture, together.
FRAME_RE = re.compile(r"pts_time:\s*(-?[0-9.]+)\s.*?mean:\[(\d+)")


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CaptureError(f"{argv[0]} failed: {err}") from None


def video_luma(path: Path, timeout: float = 120.0) -> tuple[list[float], list[float]]:
    """(frame times, mean luma 0-255) of the first video stream, times as stored in the file.

    Each frame's time and brightness come from the same showinfo line, so they can never be
    paired with the wrong frame. (Pairing showinfo's times with the frames of a rawvideo output
    by index did: that output is constant-rate, so ffmpeg repeats or drops frames around an RTSP
    backlog's burst and every later picture took its neighbour's time, one frame = 40 ms off.)
    """
    proc = _run(["ffmpeg", "-nostdin", "-nostats", "-v", "info", "-copyts", "-i", str(path), "-map", "0:v:0",
                 "-vf", "scale=32:18,format=gray,showinfo", "-fps_mode", "passthrough", "-f", "null", "-"], timeout)
    frames = [(float(m.group(1)), float(m.group(2)))
              for m in FRAME_RE.finditer(proc.stderr.decode(errors="replace"))]
    if not frames:
        raise CaptureError(f"no video frames decoded from {path}")
    return [t for t, _ in frames], [y for _, y in frames]


def audio_samples(path: Path, stream: int = 0, rate: int = 48000, timeout: float = 120.0) -> tuple[float, np.ndarray]:
    """(time of the first sample, mono float samples in -1..1) of an audio stream."""
    probe = _run(["ffprobe", "-v", "error", "-select_streams", f"a:{stream}", "-show_entries",
                  "stream=start_time", "-of", "csv=p=0", str(path)], timeout)
    try:
        start = float(probe.stdout.decode().strip().splitlines()[0].strip(","))
    except (IndexError, ValueError):
        raise CaptureError(f"no audio stream {stream} in {path}") from None
    proc = _run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}", "-ac", "1",
                 "-ar", str(rate), "-f", "s16le", "pipe:1"], timeout)
    samples = np.frombuffer(proc.stdout, dtype="<i2").astype(np.float64) / 32768.0
    return start, samples


def flash_times(times: list[float], luma: list[float], threshold: float = 160.0) -> list[float]:
    """Times of frames where the picture turns white (a rising edge through `threshold`)."""
    out = []
    for i in range(1, len(luma)):
        if luma[i] >= threshold > luma[i - 1]:
            out.append(times[i])
    return out


def beep_onsets(start: float, samples: np.ndarray, rate: int = 48000, threshold_db: float = -30.0,
                quiet_s: float = 0.3) -> list[float]:
    """Times where sound starts after at least `quiet_s` of quiet (1 ms resolution)."""
    win = rate // 1000
    n = samples.size // win
    if n == 0:
        return []
    rms = np.sqrt((samples[: n * win].reshape(n, win) ** 2).mean(axis=1) + 1e-20)
    loud = 20 * np.log10(rms) > threshold_db
    need = int(quiet_s * 1000)
    onsets = []
    quiet_run = 0
    for i, is_loud in enumerate(loud):
        if is_loud:
            if quiet_run >= need:
                onsets.append(start + i / 1000)
            quiet_run = 0
        else:
            quiet_run += 1
    return onsets


@dataclass(frozen=True)
class Offset:
    """Picture minus sound, in milliseconds: the median over the flash/beep pairs found.

    The median, not the mean: on a loaded station one flash or one beep now and then is
    stamped late (its packet read 30-150 ms after it arrived), and one such pair in seven
    moved a mean by 20 ms. `spread_ms` is the median absolute deviation from it.
    """

    offset_ms: float
    spread_ms: float
    pairs: int

    def __str__(self) -> str:
        return f"{self.offset_ms:+.1f} ms (spread {self.spread_ms:.1f} ms over {self.pairs} flashes)"


def flash_beep_pairs(flashes: list[float], beeps: list[float], max_s: float = 0.45) -> list[tuple[float, float]]:
    """Each flash matched with the nearest beep (within `max_s`): (flash time in s, flash − beep in ms)."""
    out: list[tuple[float, float]] = []
    if not beeps:
        return out
    ordered = sorted(beeps)
    for f in flashes:
        i = bisect.bisect_left(ordered, f)
        nearest = min(ordered[max(i - 1, 0):i + 1], key=lambda b: abs(f - b))
        if abs(f - nearest) <= max_s:
            out.append((f, (f - nearest) * 1000))
    return out


def pair_offsets(flashes: list[float], beeps: list[float], max_s: float = 0.45) -> Offset:
    """Match each flash with the nearest beep (within `max_s`) and summarise flash − beep."""
    diffs = [d for _, d in flash_beep_pairs(flashes, beeps, max_s)]
    if not diffs:
        raise CaptureError("no flash matched a beep: is the camera seeing the flashes and the microphone the beeps?")
    middle = statistics.median(diffs)
    return Offset(middle, statistics.median(abs(d - middle) for d in diffs), len(diffs))


def combine(runs: list[Offset]) -> Offset:
    """Several recordings as one: the median of their offsets, their spread about it, all their pairs.

    Each recording is a new RTSP connection and a new sound-server stream, whose arrival latencies
    differ by a few milliseconds (±2 ms on the test peers) however many flashes it holds: the median
    over three recordings, not one longer recording, is what brings the saved latency within 5 ms.
    """
    if not runs:
        raise CaptureError("no recording to calibrate from")
    if len(runs) == 1:
        return runs[0]
    middle = statistics.median(r.offset_ms for r in runs)
    return Offset(middle, statistics.median(abs(r.offset_ms - middle) for r in runs), sum(r.pairs for r in runs))


def measure(path: Path, audio_stream: int = 0, settle_s: float = 1.5) -> Offset:
    """The A/V offset of one recording (one file or a byte-joined set of TS segments).

    The first `settle_s` seconds are left out: an RTSP client first drains about a second of
    backlog, whose frames arrive in a burst and carry arrival times, not capture times.
    """
    times, luma = video_luma(path)
    start, samples = audio_samples(path, audio_stream)
    flashes = [f for f in flash_times(times, luma) if f >= times[0] + settle_s]
    return pair_offsets(flashes, beep_onsets(start, samples))


def record_and_measure(profile: Profile, credentials: dict[str, str], seconds: float, audio_stream: int = 0,
                       clock: Clock | None = None) -> Offset:
    """Record `seconds` of the kit (plain, not evidence, deleted afterwards) and measure picture − sound."""
    clk = clock or SystemClock()
    if not is_live(profile):
        raise ConfigError(f"kit {profile.name} has no real devices to calibrate")
    with tempfile.TemporaryDirectory(prefix="irms-calibrate-") as tmp:
        run_dir = Path(tmp)
        argv = build_argv(profile, run_dir, "calibration", credentials, t0=clk.now_us() // 1_000_000)
        sup = ProcessSupervisor("calibrate", argv, cwd=run_dir, secrets=[credentials.get("password", "")],
                                files=camera_scripts(profile, run_dir, credentials),
                                shown_as=camera_script_names(profile, run_dir, credentials))
        sup.start()
        deadline = clk.monotonic() + seconds
        while clk.monotonic() < deadline and sup.alive():
            clk.sleep(0.2)
        sup.stop()
        joined = run_dir / "joined.ts"
        with joined.open("wb") as sink:
            for seg in sorted(run_dir.glob("seg*.ts")):
                with seg.open("rb") as src:
                    shutil.copyfileobj(src, sink)
        return measure(joined, audio_stream=audio_stream)
