"""Health probes: does each device of the room's kit deliver usable signal right now.

Coverage counts a room as working only when every required device passes its probe
(ARCHITECTURE.md, "Coverage"). The judgement is made by pure functions over real data
(`analyse_frames`, `analyse_audio`, `probe_clock`) with thresholds passed in; thin capture
functions (`grab_frames` with OpenCV, `grab_audio` with PyAudio) fetch that data from the
devices, and `probe_camera` / `probe_microphone` join the two, turning a capture failure
into a failing check instead of an exception.

Every check yields one `ProbeResult`: what was measured, against which threshold, and why
it passed or failed, so the coverage page can show the reason for every failing room.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import email.utils
import math
import os
import shutil
import statistics
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from recorder.clock import Clock, SystemClock
from recorder.errors import RecorderError
from storage.errors import StoreError
from storage.url import redact

Frame = npt.NDArray[np.uint8]
Value = float | int | str | None

# A-law "digital silence" decodes to -72.2 dBFS, 16-bit zero to -inf: report at most this low.
DBFS_FLOOR = -150.0


class DeviceUnavailable(RecorderError):
    """A device could not be opened or delivered nothing in time."""

    exit_code = 6


@dataclass(frozen=True)
class ProbeResult:
    """One check of one device: the measured value against its threshold, and the verdict."""

    check: str
    device: str
    value: Value
    threshold: Value
    unit: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class FrameThresholds:
    """Limits for pictures; luma is 0-255 (BT.601 grey of the decoded BGR frame)."""

    black_luma: float = 20.0
    """Median mean luma below this: the picture is black."""
    frozen_diff: float = 0.25
    """Median mean absolute difference between consecutive frames below this: frozen."""
    covered_stddev: float = 8.0
    """Median luma standard deviation below this: the lens is covered (flat picture)."""
    focus_laplacian: float = 100.0
    """Median variance of the Laplacian below this: out of focus (no detail)."""
    min_frames: int = 2


@dataclass(frozen=True)
class AudioThresholds:
    """Limits for sound; levels are dBFS RMS with 0 dBFS a full-scale square wave."""

    silence_dbfs: float = -60.0
    """RMS below this: silent. Sits above A-law digital silence (-72.2 dBFS)."""
    clip_fraction: float = 0.01
    """Share of samples at full scale above this: clipping."""
    min_seconds: float = 0.25


class Pingable(Protocol):
    """Anything with the object store's `ping` (raises StoreError when unreachable)."""

    def ping(self) -> None: ...


# --- pure analysis -------------------------------------------------------------------------------


def _luma(frame: Frame) -> Frame:
    """The grey picture, in its own type (8-bit from a decoder): OpenCV's sums below are exact on it."""
    if frame.ndim == 2:
        return frame
    return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))


def _mean_std(image: npt.NDArray[Any]) -> tuple[float, float]:
    mean, std = cv2.meanStdDev(image)
    return float(mean[0, 0]), float(std[0, 0])


def _result(
    check: str, device: str, value: Value, threshold: Value, unit: str, ok: bool, reason: str
) -> ProbeResult:
    return ProbeResult(check, device, value, threshold, unit, ok, reason)


def _at_least(
    check: str, device: str, value: float, threshold: float, unit: str, measured: str, failure: str
) -> ProbeResult:
    """A check that passes when `value` reaches `threshold`; the reason says what was measured."""
    if value >= threshold:
        return _result(check, device, value, threshold, unit, True, measured)
    reason = f"{measured}, below {threshold:g}: {failure}"
    return _result(check, device, value, threshold, unit, False, reason)


def analyse_frames(
    frames: Sequence[Frame],
    expected_size: tuple[int, int] | None,
    *,
    device: str = "camera",
    thresholds: FrameThresholds = FrameThresholds(),
    focus: bool = True,
) -> list[ProbeResult]:
    """Judge a short window of decoded frames (BGR or grey): size, black, frozen, covered, focus.

    `focus=False` leaves out the focus (its Laplacian is nine tenths of this function's CPU at 720p):
    health while recording watches black, frozen and covered only.

    `expected_size` is (width, height); None skips the size check. Medians over the window keep
    one odd frame (a flash, a keyframe refresh) from deciding the verdict.
    """
    t = thresholds
    count = len(frames)
    enough = count >= t.min_frames
    results = [_result("camera.frames", device, count, t.min_frames, "frames", enough,
                       f"{count} frames received" if enough else
                       f"only {count} frames received, need {t.min_frames}: no usable picture")]
    if not enough:
        return results

    height, width = frames[0].shape[:2]
    sizes = {f.shape[:2] for f in frames}
    if expected_size is not None:
        want = f"{expected_size[0]}x{expected_size[1]}"
        got = f"{width}x{height}"
        ok = (width, height) == tuple(expected_size) and len(sizes) == 1
        reason = (f"frames are {got}" if ok else
                  f"frames change size within the window: {sorted(sizes)}" if len(sizes) > 1 else
                  f"frames are {got}, expected {want}")
        results.append(_result("camera.size", device, got, want, "px", ok, reason))
    if len(sizes) > 1:
        return results

    # OpenCV's own loops, not numpy's over float64 copies: a fifth of the CPU for the same figures
    # (8-bit sums, and the Laplacian of 8-bit pixels is an integer of at most ±1020, exact in float32).
    lumas = [_luma(f) for f in frames]
    stats = [_mean_std(g) for g in lumas]
    # statistics.median, not numpy's: numpy's imports numpy.ma (a twentieth of a second) at first use.
    luma = float(statistics.median([m for m, _ in stats]))
    spread = float(statistics.median([sd for _, sd in stats]))
    depth = cv2.CV_32F if lumas[0].dtype == np.uint8 else cv2.CV_64F
    change = float(statistics.median([cv2.mean(cv2.absdiff(a, b))[0] for a, b in zip(lumas, lumas[1:], strict=False)]))
    results += [
        _at_least("camera.black", device, round(luma, 2), t.black_luma, "luma",
                  f"mean luma {luma:.1f}", "the picture is black"),
        _at_least("camera.frozen", device, round(change, 3), t.frozen_diff, "luma/px",
                  f"frames change by {change:.3f} per pixel", "the picture is frozen"),
        _at_least("camera.covered", device, round(spread, 2), t.covered_stddev, "luma",
                  f"luma spread {spread:.1f}", "flat picture, lens covered?"),
    ]
    if focus:
        detail = float(statistics.median([_mean_std(cv2.Laplacian(g, depth))[1] ** 2 for g in lumas]))
        results.append(_at_least("camera.focus", device, round(detail, 1), t.focus_laplacian, "laplacian var",
                                 f"detail (Laplacian variance) {detail:.1f}", "out of focus"))
    return results


def _normalised(samples: npt.NDArray[Any]) -> tuple[npt.NDArray[np.float64], float]:
    """Samples as floats in [-1, 1) and the level that counts as full scale."""
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        scale = float(info.max) + 1.0
        return samples.astype(np.float64).ravel() / scale, float(info.max) / scale
    return samples.astype(np.float64).ravel(), 32767.0 / 32768.0


def rms_dbfs(samples: npt.NDArray[Any]) -> float:
    """RMS level in dBFS (0 dBFS = full-scale square), floored at DBFS_FLOOR."""
    data, _ = _normalised(samples)
    if data.size == 0:
        return DBFS_FLOOR
    rms = math.sqrt(float(np.mean(data * data)))
    return max(DBFS_FLOOR, 20 * math.log10(rms)) if rms > 0 else DBFS_FLOOR


def analyse_audio(
    samples: npt.NDArray[Any],
    rate: int,
    *,
    device: str = "microphone",
    thresholds: AudioThresholds = AudioThresholds(),
) -> list[ProbeResult]:
    """Judge a stretch of samples (int16 or float in [-1, 1], any channel layout): silent, clipping."""
    t = thresholds
    data, full_scale = _normalised(samples)
    seconds = data.size / rate if rate > 0 else 0.0
    enough = seconds >= t.min_seconds
    results = [_result("mic.samples", device, round(seconds, 3), t.min_seconds, "s", enough,
                       f"{seconds:.2f} s of sound received" if enough else
                       f"only {seconds:.2f} s of sound received, need {t.min_seconds:g} s")]
    if not enough:
        return results
    level = rms_dbfs(samples)
    results.append(_at_least("mic.silent", device, round(level, 2), t.silence_dbfs, "dBFS",
                             f"level {level:.1f} dBFS", "the microphone is silent"))
    clipped = 100 * float(np.mean(np.abs(data) >= full_scale))
    limit = 100 * t.clip_fraction
    ok = clipped <= limit
    results.append(_result("mic.clipping", device, round(clipped, 2), limit, "%", ok,
                           f"{clipped:.2f}% of samples at full scale" if ok else
                           f"{clipped:.1f}% of samples at full scale, above {limit:g}%: clipping"))
    return results


def probe_clock(offset_s: float, tolerance_s: float, *, device: str = "clock") -> ProbeResult:
    """The station clock's offset from a reference, against the tolerance."""
    ok = abs(offset_s) <= tolerance_s
    direction = "ahead of" if offset_s < 0 else "behind"
    return _result("clock.offset", device, round(offset_s, 3), tolerance_s, "s", ok,
                   f"clock within {abs(offset_s):.3f} s of the reference" if ok else
                   f"clock is {abs(offset_s):.3f} s {direction} the reference, tolerance {tolerance_s:g} s")


# --- probes that touch the machine -----------------------------------------------------------------


def probe_disk(path: str | os.PathLike[str], min_free_bytes: int) -> ProbeResult:
    """Free space on the file system holding `path` against the threshold."""
    device = str(path)
    try:
        free = shutil.disk_usage(path).free
    except OSError as err:
        return _result("disk.free", device, None, min_free_bytes, "bytes", False,
                       f"cannot read free space: {err.strerror or err}")
    ok = free >= min_free_bytes
    return _result("disk.free", device, free, min_free_bytes, "bytes", ok,
                   f"{free / 2**30:.1f} GiB free" if ok else
                   f"{free / 2**30:.2f} GiB free, below {min_free_bytes / 2**30:.2f} GiB")


def probe_store(store: Pingable, *, device: str | None = None) -> ProbeResult:
    """Whether the object store answers now."""
    name = device if device is not None else redact(str(getattr(store, "url", "store")))
    try:
        store.ping()
    except (StoreError, OSError) as err:
        return _result("store.reachable", name, "no", "yes", "", False, f"store unreachable: {err}")
    return _result("store.reachable", name, "yes", "yes", "", True, "store answers")


def clock_offset_from_http(url: str, *, clock: Clock | None = None, timeout_s: float = 5.0) -> float:
    """Reference time minus station time, in seconds, from an HTTP server's Date header.

    Date has whole-second resolution, so the answer is good to about half a second: enough to
    catch a station clock that is minutes or hours off.
    """
    clk = clock or SystemClock()
    request = urllib.request.Request(url, method="HEAD")
    before = clk.now_us()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (operator-given URL)
            date = response.headers.get("Date")
    except urllib.error.HTTPError as err:
        date = err.headers.get("Date")
    except (urllib.error.URLError, OSError) as err:
        raise DeviceUnavailable(f"time reference {redact(url)} unreachable: {err}") from None
    after = clk.now_us()
    if not date:
        raise DeviceUnavailable(f"time reference {redact(url)} sent no Date header")
    try:
        stamp = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise DeviceUnavailable(f"time reference {redact(url)} sent a malformed Date: {date!r}") from None
    if stamp.tzinfo is None:  # "-0000": UTC by RFC 5322
        stamp = stamp.replace(tzinfo=dt.UTC)
    reference = stamp.timestamp() + 0.5  # the header truncates to the second
    return reference - (before + after) / 2e6


@contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """Set one environment variable for the duration (OpenCV and libpulse read it at open time)."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def grab_frames(source: str | int, n: int, timeout_s: float, *, clock: Clock | None = None) -> list[Frame]:
    """Read up to `n` decoded BGR frames from an RTSP/HTTP URL, a file, or a V4L2 device.

    RTSP goes over TCP. Opening and each read are bounded by `timeout_s`, and no read starts after
    `timeout_s` has passed, so the call takes at most about twice `timeout_s`. Raises
    DeviceUnavailable when the source cannot be opened; returns fewer frames (maybe none) when
    it stops delivering.
    """
    clk = clock or SystemClock()
    ms = max(1, int(timeout_s * 1000))
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    is_v4l2 = isinstance(source, int) or str(source).startswith("/dev/video")
    options = "rtsp_transport;tcp" if str(source).startswith("rtsp") else None
    deadline = clk.monotonic() + timeout_s
    with _env("OPENCV_FFMPEG_CAPTURE_OPTIONS", options):
        capture = cv2.VideoCapture(source, cv2.CAP_V4L2 if is_v4l2 else cv2.CAP_FFMPEG, params)
    frames: list[Frame] = []
    try:
        if not capture.isOpened():
            shown = source if isinstance(source, int) else redact(source)
            raise DeviceUnavailable(f"cannot open {shown} within {timeout_s:g} s")
        while len(frames) < n and clk.monotonic() < deadline:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            frames.append(np.asarray(frame, dtype=np.uint8))
    finally:
        capture.release()
    return frames


_HUSH: list[object] = []


def open_portaudio() -> Any:
    """A `pyaudio.PyAudio()` with ALSA's and JACK's start-up chatter kept off stderr.

    PortAudio probes every ALSA card and a JACK server when it loads; on a station without
    them that prints dozens of harmless error lines. The callbacks only drop those messages.
    """
    import pyaudio  # deferred: PortAudio probes every sound card when it loads

    if not _HUSH:
        alsa_handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                        ctypes.c_char_p)(lambda *_: None)
        jack_handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda *_: None)
        _HUSH.extend([alsa_handler, jack_handler])  # keep the callbacks alive
        for lib_name, setters, handler in (("asound", ["snd_lib_error_set_handler"], alsa_handler),
                                           ("jack", ["jack_set_error_function", "jack_set_info_function"],
                                            jack_handler)):
            path = ctypes.util.find_library(lib_name)
            if path is None:
                continue
            try:
                lib = ctypes.CDLL(path)
                for setter in setters:
                    getattr(lib, setter)(handler)
            except (OSError, AttributeError):
                continue
    return pyaudio.PyAudio()


def grab_audio(
    source: str,
    seconds: float,
    *,
    rate: int = 48000,
    device_name: str = "pulse",
    warmup_s: float = 0.1,
    timeout_s: float | None = None,
) -> npt.NDArray[np.int16]:
    """Record `seconds` of mono int16 sound from a PulseAudio source through PyAudio.

    PortAudio reaches PulseAudio through ALSA's `pulse` device; PULSE_SOURCE picks the source.
    The first `warmup_s` are dropped. Raises DeviceUnavailable when the device is missing or
    delivers less than asked within `timeout_s` (default: twice the duration plus 5 s).
    """
    import pyaudio  # deferred: PortAudio probes every sound card when it loads

    wanted = int(rate * (seconds + warmup_s))
    limit = timeout_s if timeout_s is not None else 2 * (seconds + warmup_s) + 5
    chunks: list[bytes] = []
    got = [0]
    done = threading.Event()

    def collect(data: bytes | None, frames: int, _time: Any, _status: int) -> tuple[None, int]:
        if data:
            chunks.append(data)
            got[0] += frames
        if got[0] >= wanted:
            done.set()
            return None, pyaudio.paComplete
        return None, pyaudio.paContinue

    with _env("PULSE_SOURCE", source):
        audio = open_portaudio()
        try:
            index = next((i for i in range(audio.get_device_count())
                          if audio.get_device_info_by_index(i).get("name") == device_name), None)
            if index is None:
                raise DeviceUnavailable(
                    f"no audio device named {device_name!r} (is libasound2-plugins installed?)")
            try:
                stream = audio.open(format=pyaudio.paInt16, channels=1, rate=rate, input=True,
                                    input_device_index=index, frames_per_buffer=rate // 50,
                                    stream_callback=collect)
            except OSError as err:
                raise DeviceUnavailable(f"cannot open {source} through {device_name}: {err}") from None
            try:
                stream.start_stream()
                done.wait(limit)
            finally:
                stream.stop_stream()
                stream.close()
        finally:
            audio.terminate()
    samples = np.frombuffer(b"".join(chunks), dtype=np.int16)
    if samples.size < wanted:
        raise DeviceUnavailable(f"{source} delivered {samples.size / rate:.2f} s of sound in {limit:g} s, "
                                f"expected {seconds + warmup_s:g} s")
    skip = int(rate * warmup_s)
    return samples[skip:skip + int(rate * seconds)].copy()


def probe_camera(
    source: str | int,
    expected_size: tuple[int, int] | None,
    *,
    frames: int = 15,
    timeout_s: float = 15.0,
    thresholds: FrameThresholds = FrameThresholds(),
    clock: Clock | None = None,
) -> list[ProbeResult]:
    """Grab a window of frames from a camera and judge it."""
    return probe_camera_window(source, expected_size, frames=frames, timeout_s=timeout_s, thresholds=thresholds,
                               clock=clock)[0]


def probe_camera_window(
    source: str | int,
    expected_size: tuple[int, int] | None,
    *,
    frames: int = 15,
    timeout_s: float = 15.0,
    thresholds: FrameThresholds = FrameThresholds(),
    clock: Clock | None = None,
) -> tuple[list[ProbeResult], Frame | None]:
    """`probe_camera`, and the last frame it judged (None when none came): what the camera showed."""
    device = source if isinstance(source, int) else redact(source)
    name = str(device)
    try:
        window = grab_frames(source, frames, timeout_s, clock=clock)
    except DeviceUnavailable as err:
        return [_result("camera.frames", name, 0, thresholds.min_frames, "frames", False, str(err))], None
    return (analyse_frames(window, expected_size, device=name, thresholds=thresholds),
            window[-1] if window else None)


def jpeg(frame: Frame, width: int = 640) -> bytes:
    """A frame as a JPEG at most `width` pixels wide (what the pre-flight page shows of a camera)."""
    height, w = frame.shape[:2]
    if w > width:
        frame = np.asarray(cv2.resize(frame, (width, max(1, round(height * width / w))),
                                      interpolation=cv2.INTER_AREA), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise DeviceUnavailable("cannot encode the camera's picture as JPEG")
    return bytes(data.tobytes())


def probe_microphone(
    source: str,
    *,
    seconds: float = 1.0,
    rate: int = 48000,
    thresholds: AudioThresholds = AudioThresholds(),
) -> list[ProbeResult]:
    """Record a moment of sound from a PulseAudio source and judge it."""
    try:
        samples = grab_audio(source, seconds, rate=rate)
    except DeviceUnavailable as err:
        return [_result("mic.samples", source, 0.0, thresholds.min_seconds, "s", False, str(err))]
    return analyse_audio(samples, rate, device=source, thresholds=thresholds)


def all_ok(results: Sequence[ProbeResult]) -> bool:
    """True when every check passed (and there was at least one)."""
    return bool(results) and all(r.ok for r in results)

