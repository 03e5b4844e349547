"""Device discovery: which cameras and microphones this station can see, and what they deliver.

Three kinds: V4L2 cameras (USB webcams, capture cards) from /sys/class/video4linux and
`v4l2-ctl --list-formats-ext`; sound sources from PulseAudio (`pactl list short sources`) and
PortAudio (PyAudio's device list); RTSP/HTTP cameras named in the configuration, described by
ffprobe (codec, size, frame rate, audio). Parsers are pure functions over the tools' text so
they can be tested on captured output; every subprocess call has a timeout, and a missing tool
or a failing device becomes an `error` on the entry, never an exception.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from evidence.owner_only import write_private
from recorder import private_input
from recorder.probe import open_portaudio
from storage.url import redact

SYS_VIDEO = Path("/sys/class/video4linux")
TOOL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class VideoMode:
    """One pixel format at one frame size, with the frame rates the device offers for it."""

    pixel_format: str
    description: str
    width: int
    height: int
    fps: tuple[float, ...] = ()


@dataclass(frozen=True)
class VideoDevice:
    path: str
    name: str
    modes: tuple[VideoMode, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class AudioSource:
    """A sound source as PulseAudio or PortAudio names it."""

    name: str
    backend: str
    index: int
    channels: int = 0
    rate: int = 0
    detail: str = ""


@dataclass(frozen=True)
class NetworkCamera:
    """What ffprobe found at a camera URL (the URL is shown with any password redacted)."""

    url: str
    ok: bool
    video_codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_codec: str = ""
    sample_rate: int = 0
    error: str = ""


@dataclass(frozen=True)
class Inventory:
    video: list[VideoDevice] = field(default_factory=list)
    audio: list[AudioSource] = field(default_factory=list)
    network: list[NetworkCamera] = field(default_factory=list)


Runner = Callable[[Sequence[str], float], str]


def run_tool(argv: Sequence[str], timeout_s: float) -> str:
    """Run a discovery tool and return its stdout; OSError or TimeoutExpired on failure."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise OSError(f"{argv[0]}: {message}")
    return done.stdout


# --- V4L2 -----------------------------------------------------------------------------------------

# v4l2-ctl >= 1.14 prints "[0]: 'YUYV' (YUYV 4:2:2)"; older ones "Pixel Format: 'YUYV'" then "Name : ...".
_FORMAT = re.compile(r"^\s*\[\d+\]:\s*'(?P<fourcc>[^']*)'\s*\((?P<desc>.*)\)\s*$")
_OLD_FORMAT = re.compile(r"^\s*Pixel Format\s*:\s*'(?P<fourcc>[^']*)'(?:\s*\((?P<desc>.*)\))?\s*$")
_OLD_NAME = re.compile(r"^\s*Name\s*:\s*(?P<desc>.*?)\s*$")
_SIZE = re.compile(r"^\s*Size:\s*(?:Discrete|Stepwise|Continuous)\s+(?P<w>\d+)x(?P<h>\d+)"
                   r"(?:\s*-\s*(?P<w2>\d+)x(?P<h2>\d+))?")
_INTERVAL = re.compile(r"^\s*Interval:.*\((?:[\d.]+-)?(?P<fps>[\d.]+)\s*fps\)")
_CREDENTIALS = re.compile(r"(//[^/:@\s]+):[^@/\s]+@")


def parse_v4l2_formats(text: str) -> tuple[VideoMode, ...]:
    """Modes from `v4l2-ctl --list-formats-ext` output; stepwise sizes count as their largest size."""
    modes: list[VideoMode] = []
    fourcc = desc = ""
    size: tuple[int, int] | None = None
    rates: list[float] = []

    def flush() -> None:
        if fourcc and size is not None:
            modes.append(VideoMode(fourcc, desc, size[0], size[1], tuple(rates)))

    for line in text.splitlines():
        if m := (_FORMAT.match(line) or _OLD_FORMAT.match(line)):
            flush()
            fourcc, desc, size, rates = m["fourcc"].strip(), (m["desc"] or "").strip(), None, []
        elif (m := _OLD_NAME.match(line)) and fourcc and size is None:
            desc = m["desc"]
        elif m := _SIZE.match(line):
            flush()
            width, height = (m["w2"], m["h2"]) if m["w2"] else (m["w"], m["h"])
            size, rates = (int(width), int(height)), []
        elif (m := _INTERVAL.match(line)) and size is not None:
            rates.append(float(m["fps"]))
    flush()
    return tuple(modes)


def list_video_devices(
    sys_root: Path = SYS_VIDEO,
    *,
    run: Runner = run_tool,
    v4l2_ctl: str | None = None,
    timeout_s: float = TOOL_TIMEOUT_S,
) -> list[VideoDevice]:
    """V4L2 nodes under /sys/class/video4linux, with their modes when v4l2-ctl is installed.

    `v4l2_ctl`: the tool's path; None looks it up on PATH, "" means it is not installed.
    """
    tool = shutil.which("v4l2-ctl") if v4l2_ctl is None else (v4l2_ctl or None)
    if not sys_root.is_dir():
        return []
    devices = []
    for node in sorted(sys_root.glob("video*"), key=lambda p: (len(p.name), p.name)):
        path = f"/dev/{node.name}"
        try:
            name = (node / "name").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            name = ""
        if tool is None:
            devices.append(VideoDevice(path, name, error="v4l2-ctl not installed: formats unknown"))
            continue
        try:
            modes = parse_v4l2_formats(run([tool, "-d", path, "--list-formats-ext"], timeout_s))
        except (OSError, subprocess.TimeoutExpired) as err:
            devices.append(VideoDevice(path, name, error=str(err)))
            continue
        devices.append(VideoDevice(path, name, modes))
    return devices


# --- sound ----------------------------------------------------------------------------------------

_SPEC = re.compile(r"(?P<fmt>\S+)\s+(?P<ch>\d+)ch\s+(?P<rate>\d+)Hz")


def parse_pactl_sources(text: str) -> list[AudioSource]:
    """Sources from `pactl list short sources` (index, name, driver, sample spec, state; tab-separated)."""
    sources = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) < 2 or not cols[0].strip().isdigit():
            continue
        spec = _SPEC.search(cols[3]) if len(cols) > 3 else None
        state = cols[4].strip() if len(cols) > 4 else ""
        sources.append(AudioSource(
            name=cols[1].strip(), backend="pulse", index=int(cols[0]),
            channels=int(spec["ch"]) if spec else 0, rate=int(spec["rate"]) if spec else 0,
            detail=" ".join(x for x in (spec["fmt"] if spec else "", state) if x),
        ))
    return sources


def pyaudio_inputs() -> list[AudioSource]:
    """PortAudio's input devices (PyAudio); `pulse` is the one that reaches PulseAudio sources."""
    audio = open_portaudio()
    try:
        found = []
        for i in range(audio.get_device_count()):
            info: dict[str, Any] = dict(audio.get_device_info_by_index(i))
            channels = int(info.get("maxInputChannels", 0))
            if channels <= 0:
                continue
            api = audio.get_host_api_info_by_index(int(info["hostApi"])).get("name", "")
            found.append(AudioSource(name=str(info.get("name", "")), backend="pyaudio", index=i,
                                     channels=channels, rate=int(float(info.get("defaultSampleRate", 0))),
                                     detail=str(api)))
        return found
    finally:
        audio.terminate()


def list_audio_sources(*, run: Runner = run_tool, timeout_s: float = TOOL_TIMEOUT_S,
                       with_pyaudio: bool = True) -> tuple[list[AudioSource], list[str]]:
    """PulseAudio sources and PortAudio inputs, and the errors met on the way."""
    sources: list[AudioSource] = []
    errors: list[str] = []
    try:
        sources += parse_pactl_sources(run(["pactl", "list", "short", "sources"], timeout_s))
    except (OSError, subprocess.TimeoutExpired) as err:
        errors.append(f"pactl: {err}")
    if with_pyaudio:
        try:
            sources += pyaudio_inputs()
        except (OSError, ImportError) as err:
            errors.append(f"pyaudio: {err}")
    return sources, errors


# --- network cameras ------------------------------------------------------------------------------


def _rate(text: str) -> float:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return round(float(value), 3)


def parse_ffprobe_streams(text: str, url: str) -> NetworkCamera:
    """A camera description from `ffprobe -show_streams -of json` output."""
    try:
        streams = json.loads(text).get("streams", [])
    except (json.JSONDecodeError, AttributeError):
        return NetworkCamera(redact(url), False, error="ffprobe printed no JSON")
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        return NetworkCamera(redact(url), False, error="no video stream")
    fps = _rate(str(video.get("avg_frame_rate", "0/0"))) or _rate(str(video.get("r_frame_rate", "0/0")))
    return NetworkCamera(
        url=redact(url), ok=True,
        video_codec=str(video.get("codec_name", "")),
        width=int(video.get("width", 0)), height=int(video.get("height", 0)), fps=fps,
        audio_codec=str(audio.get("codec_name", "")) if audio else "",
        sample_rate=int(audio.get("sample_rate", 0)) if audio else 0,
    )


def ffprobe_argv(script: Path, timeout_s: float) -> list[str]:
    """ffprobe's argv for a camera whose URL is in `script` (see `camera_script`): never the URL itself."""
    opts = [x for k, v in private_input.input_options().items() for x in (f"-{k}", str(v))]
    return ["ffprobe", "-v", "error", "-hide_banner", *opts, "-show_streams", "-of", "json", "-i", str(script)]


def camera_script(url: str, timeout_s: float) -> str:
    """The ffconcat script that opens a camera URL for ffprobe: RTSP over TCP, socket I/O bounded."""
    return private_input.ffconcat_script(url, private_input.camera_options(url, int(timeout_s * 1_000_000)),
                                         fast=False)


def probe_network_camera(url: str, *, run: Runner = run_tool, timeout_s: float = 15.0) -> NetworkCamera:
    """Ask ffprobe what a camera URL delivers (the URL reaches ffprobe in a private file, not its argv)."""
    shown = redact(url)
    with tempfile.TemporaryDirectory(prefix="irms-probe-") as tmp:  # 0700
        script = Path(tmp) / "camera.ffconcat"
        try:
            write_private(script, camera_script(url, timeout_s).encode())
            out = run(ffprobe_argv(script, timeout_s), timeout_s + 5)
        except ValueError as err:
            return NetworkCamera(shown, False, error=str(err))
        except subprocess.TimeoutExpired:
            return NetworkCamera(shown, False, error=f"ffprobe gave no answer within {timeout_s + 5:g} s")
        except OSError as err:  # ffprobe's message names the script: name the camera instead
            message = _CREDENTIALS.sub(r"\1:***@", str(err)).replace(str(script), shown)
            return NetworkCamera(shown, False, error=message)
    return parse_ffprobe_streams(out, url)


def discover(camera_urls: Sequence[str] = (), *, with_pyaudio: bool = True) -> tuple[Inventory, list[str]]:
    """Everything this station can see, and the errors met while looking."""
    audio, errors = list_audio_sources(with_pyaudio=with_pyaudio)
    network = [probe_network_camera(u) for u in camera_urls]
    return Inventory(video=list_video_devices(), audio=audio, network=network), errors
