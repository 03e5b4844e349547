"""The ffmpeg command for one run of a session, built by a pure function, and the
parsing of what ffmpeg reports back (the segment list, a salvaged segment's length).

One ffmpeg process per run: every camera and microphone of the kit as inputs,
H.264 (bitrate capped) + AAC, a burned-in clock and room label (R03), cut into
MPEG-TS segments whose packets are flushed as they are written, so that a segment
cut short by a crash still plays up to the crash.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from recorder.errors import CaptureError
from recorder.profile import Camera, Microphone, Profile

SEGMENT_PATTERN = "seg%06d.ts"
SEGMENT_LIST = "segments.csv"


def camera_input(cam: Camera, credentials: dict[str, str]) -> Any:
    """One camera as an ffmpeg-python input node."""
    if cam.source == "lavfi":
        spec = cam.device.format(width=cam.width, height=cam.height, fps=cam.fps)
        return ffmpeg.input(spec, f="lavfi", re=None)
    if cam.source == "rtsp":
        url = cam.device.format(**credentials)
        return ffmpeg.input(url, rtsp_transport="tcp", timeout=5_000_000, use_wallclock_as_timestamps=1)
    if cam.source == "http":
        return ffmpeg.input(cam.device.format(**credentials), use_wallclock_as_timestamps=1)
    return ffmpeg.input(
        cam.device, f="v4l2", framerate=cam.fps, video_size=f"{cam.width}x{cam.height}",
        use_wallclock_as_timestamps=1,
    )


def microphone_input(mic: Microphone) -> Any:
    if mic.source == "lavfi":
        return ffmpeg.input(mic.device.format(rate=mic.rate), f="lavfi", re=None)
    fmt = "pulse" if mic.source == "pulse" else "alsa"
    return ffmpeg.input(mic.device, f=fmt, sample_rate=mic.rate, channels=mic.channels)


def overlay_text(label: str) -> str:
    """drawtext text: room label and the local date-time (dd/mm/yyyy, 24-hour)."""
    safe = "".join(ch for ch in label if ch not in "%{}\\'\":")
    return f"{safe}  %{{localtime:%d/%m/%Y %T}}"


def build_argv(
    profile: Profile,
    run_dir: Path,
    label: str,
    credentials: dict[str, str] | None = None,
) -> list[str]:
    """The full ffmpeg argv for one run. Pure: same inputs, same argv."""
    creds = credentials or {}
    streams: list[Any] = []
    cam_inputs = [camera_input(c, creds) for c in profile.cameras]
    for cam, node in zip(profile.cameras, cam_inputs, strict=True):
        v = node.video
        if not cam.passthrough and (profile.overlay.clock or profile.overlay.room_label):
            text = overlay_text(label) if profile.overlay.room_label else "%{localtime:%d/%m/%Y %T}"
            v = v.drawtext(
                text=text, escape_text=False, fontfile=profile.overlay.font,
                x=16, y="h-th-16", fontsize=max(16, cam.height // 30), fontcolor="white",
                box=1, boxcolor="black@0.6", boxborderw=6,
            )
        streams.append(v)
    for mic in profile.microphones:
        if mic.source == "camera":
            idx = int(mic.device) if mic.device.isdigit() else 0
            streams.append(cam_inputs[idx].audio)
        else:
            streams.append(microphone_input(mic).audio)
    enc = profile.encode
    seg = profile.segment.seconds
    any_copy = any(c.passthrough for c in profile.cameras)
    opts: dict[str, Any] = {
        "acodec": enc.audio_codec,
        "audio_bitrate": f"{enc.audio_bitrate_kbps}k",
        "f": "segment",
        "segment_time": seg,
        "segment_format": "mpegts",
        "segment_format_options": "flush_packets=1",
        "segment_list": str(run_dir / SEGMENT_LIST),
        "segment_list_type": "csv",
        "reset_timestamps": 0,
        "max_muxing_queue_size": 1024,
    }
    if any_copy:
        opts["vcodec"] = "copy"
    else:
        fps = profile.cameras[0].fps
        opts.update({
            "vcodec": enc.video_codec,
            "preset": enc.preset,
            "tune": "zerolatency",
            "crf": enc.crf,
            "maxrate": f"{enc.max_bitrate_kbps}k",
            "bufsize": f"{enc.max_bitrate_kbps * 2}k",
            "g": fps * seg,
            "force_key_frames": f"expr:gte(t,n_forced*{seg})",
            "pix_fmt": "yuv420p",
        })
    out = ffmpeg.output(*streams, str(run_dir / SEGMENT_PATTERN), **opts)
    argv: list[str] = ffmpeg.compile(out, cmd="ffmpeg")
    return [argv[0], "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning", *argv[1:]]


@dataclass(frozen=True)
class FinishedSegment:
    """A line of ffmpeg's segment list: a segment that is complete on disk."""

    file: str
    start_us: int
    end_us: int


def parse_segment_list(text: str) -> list[FinishedSegment]:
    """Parse ffmpeg's CSV segment list; a torn last line (no newline yet) is ignored."""
    out: list[FinishedSegment] = []
    lines = text.split("\n")
    for line in lines[:-1]:  # the part after the last newline may be half-written
        if not line.strip():
            continue
        parts = line.rsplit(",", 2)
        if len(parts) != 3:
            continue
        name, start, end = parts
        out.append(FinishedSegment(name.strip('"'), round(float(start) * 1e6), round(float(end) * 1e6)))
    return out


def probe_duration_us(path: Path, timeout: float = 20.0) -> int:
    """Length of the decodable media in a (possibly truncated) segment, 0 if none."""
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
            capture_output=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CaptureError(f"ffprobe failed on {path}: {err}") from None
    if proc.returncode != 0:
        return 0
    try:
        duration = json.loads(proc.stdout).get("format", {}).get("duration")
    except json.JSONDecodeError:
        return 0
    return round(float(duration) * 1e6) if duration else 0
