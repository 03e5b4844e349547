"""The ffmpeg command for one run of a session, built by a pure function, and the
parsing of what ffmpeg reports back (the segment list, a salvaged segment's length).

One ffmpeg process per run: every camera and microphone of the kit as inputs,
H.264 (bitrate capped) + AAC, a burned-in clock and room label (R03), cut into
MPEG-TS segments whose packets are flushed as they are written, so that a segment
cut short by a crash still plays up to the crash.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from recorder import private_input
from recorder.errors import CaptureError
from recorder.profile import Camera, Microphone, Profile
from storage.url import has_password, redact
from verifier.media import DECODE_TIMED_OUT, probe_media_file

SEGMENT_PATTERN = "seg%06d.ts"
SEGMENT_LIST = "segments.csv"
CAMERA_TIMEOUT_US = 5_000_000  # a network camera's socket I/O bound


GENERATED, WALL_CLOCK, CAMERA_CLOCK = "generated", "wall_clock", "camera_clock"


def timing(devices: list[dict[str, Any]]) -> str:
    """How a kit's runs are timed, from its devices as the signed header lists them (Profile.devices_json),
    so that a crashed session's runs are read as they were recorded whatever kit the agent now has:
    GENERATED (synthetic inputs: the run's clock starts with its first segment), CAMERA_CLOCK
    (`camera_timed`) or WALL_CLOCK (every input stamped on arrival)."""
    cameras = [d for d in devices if d.get("kind") == "camera"]
    microphones = [d for d in devices if d.get("kind") == "microphone"]
    if all(d.get("source") == "lavfi" for d in devices):
        return GENERATED
    if (len(cameras) == 1 and cameras[0].get("source") == "rtsp" and microphones
            and all(m.get("source") == "camera" for m in microphones)):
        return CAMERA_CLOCK
    return WALL_CLOCK


def is_live(profile: Profile) -> bool:
    """A kit of real devices: its inputs are stamped with a clock (the wall clock's or a camera's), not generated."""
    return timing(profile.devices_json()) != GENERATED


def fill_template(template: str, credentials: dict[str, str]) -> str:
    try:
        return template.format(**credentials)
    except KeyError as err:
        raise CaptureError(f"device URL template needs {err.args[0]!r}: set camera_{err.args[0]} in the "
                           "station configuration") from None


def camera_url(cam: Camera, credentials: dict[str, str]) -> str:
    """Where a network camera is: this station's override (`url_<role>`), else the profile's template,
    filled in ({user}, {password}, {host} from the station's configuration)."""
    return fill_template(credentials.get(f"url_{cam.role}") or cam.device, credentials)


def warn_password_in_argv(url: str, flag: str) -> None:
    """A camera URL given on the command line with its password in it: say that every local user can read it."""
    if has_password(url):
        print(f"irms-agent: warning: the camera password given in {flag} is in this command's argv, which every "
              "local user can read (ps); write the URL as rtsp://{user}:{password}@HOST/... and set "
              "camera_user / camera_password in station.toml", file=sys.stderr)


def microphone_source(mic: Microphone, credentials: dict[str, str]) -> str:
    """The capture source of a microphone: this station's override (`mic_<role>`), else the profile's."""
    return credentials.get(f"mic_{mic.role}") or mic.device


def camera_timed(profile: Profile) -> bool:
    """A kit whose one RTSP camera gives the picture and every sound: stamped by the camera's own clock.

    The camera times its picture and its sound on one capture clock (RTP timestamps, tied together
    by its RTCP sender reports), which ffmpeg keeps when the input is not stamped on arrival. Arrival
    times would put each connection's own difference between the picture's path and the sound's
    (the camera's encoder and queues) into the recording: 3 to 52 ms, and 320 ms once a starved
    camera fell behind (docs/architecture.md). A kit with a second camera or a separate microphone
    has no shared capture clock: every input is stamped on arrival and shifted by its calibrated
    latency.
    """
    return timing(profile.devices_json()) == CAMERA_CLOCK


# A camera-timed run: the camera's timestamps (0 near its first packet) are shifted this much, so that
# nothing is negative (AAC's priming, 1024 samples, would start before 0); the run's origin is learned.
CAMERA_CLOCK_LEAD_S = 1.0
# ... from the arrival of its first sound, this long: each frame's arrival − its timestamp, the least
# (recorder.origin); one line per sound frame on ffmpeg's stderr, for these seconds only.
ORIGIN_WINDOW_S = 8
# The sound is encoded at 48 kHz whatever the device's rate. An AAC frame is 1024 samples: 128 ms at a camera's
# 8 kHz, which the muxer waited for (with the encoder's delay of two frames) before it could interleave the key
# frame that cuts a segment, so a segment was listed about 580 ms after its last frame; at 48 kHz (21 ms frames)
# about 280 ms. Live latency with 1 s segments went from 3.01 to 1.73 segment lengths (bench/live_latency.py).
AUDIO_RATE = 48000


def _offset(t0: int | None, latency_ms: int) -> dict[str, Any]:
    """-itsoffset so that every input's timestamps are wall clock − T0, minus the device's own latency."""
    if t0 is None:
        return {}
    return {"itsoffset": f"{-t0 - latency_ms / 1000:.3f}"}


def camera_script_path(run_dir: Path, cam: Camera) -> Path:
    """Where a network camera's ffconcat script is (see recorder.private_input)."""
    return run_dir / f"camera-{cam.role}.ffconcat"


def camera_scripts(profile: Profile, run_dir: Path, credentials: dict[str, str]) -> dict[Path, str]:
    """The ffconcat scripts that give ffmpeg the network cameras' URLs (passwords stay out of its argv).

    Written 0600 before ffmpeg starts and removed when it ends (ProcessSupervisor's `files`).
    """
    out: dict[Path, str] = {}
    for cam in profile.cameras:
        if cam.source in private_input.NETWORK_SOURCES:
            url = camera_url(cam, credentials)
            out[camera_script_path(run_dir, cam)] = private_input.ffconcat_script(
                url, private_input.camera_options(url, CAMERA_TIMEOUT_US), fast=True)
    return out


def camera_script_names(profile: Profile, run_dir: Path, credentials: dict[str, str]) -> dict[str, str]:
    """Each script's path -> its camera's URL, password redacted: what ffmpeg's messages show instead."""
    return {str(camera_script_path(run_dir, cam)): redact(camera_url(cam, credentials))
            for cam in profile.cameras if cam.source in private_input.NETWORK_SOURCES}


def camera_input(cam: Camera, run_dir: Path, t0: int | None = None, own_clock: bool = False) -> Any:
    """One camera as an ffmpeg-python input node (a network camera: through its script in `run_dir`).

    `own_clock`: keep the camera's timestamps (see `camera_timed`), shifted by CAMERA_CLOCK_LEAD_S."""
    if cam.source == "lavfi":
        spec = cam.device.format(width=cam.width, height=cam.height, fps=cam.fps)
        return ffmpeg.input(spec, f="lavfi", re=None)
    if own_clock:
        return ffmpeg.input(str(camera_script_path(run_dir, cam)), **private_input.input_options(),
                            itsoffset=f"{CAMERA_CLOCK_LEAD_S:.3f}")
    if cam.source in private_input.NETWORK_SOURCES:
        return ffmpeg.input(str(camera_script_path(run_dir, cam)), **private_input.input_options(),
                            use_wallclock_as_timestamps=1, **_offset(t0, cam.latency_ms))
    return ffmpeg.input(
        cam.device, f="v4l2", framerate=cam.fps, video_size=(cam.width, cam.height),
        use_wallclock_as_timestamps=1, **_offset(t0, cam.latency_ms),
    )


def microphone_input(mic: Microphone, credentials: dict[str, str] | None = None, t0: int | None = None) -> Any:
    if mic.source == "lavfi":
        return ffmpeg.input(mic.device.format(rate=mic.rate), f="lavfi", re=None)
    fmt = "pulse" if mic.source == "pulse" else "alsa"
    device = microphone_source(mic, credentials or {})
    return ffmpeg.input(device, f=fmt, sample_rate=mic.rate, channels=mic.channels, **_offset(t0, mic.latency_ms))


def overlay_text(label: str) -> str:
    """drawtext text: room label and the local date-time (dd/mm/yyyy, 24-hour)."""
    safe = "".join(ch for ch in label if ch not in "%{}\\'\":")
    return f"{safe}  %{{localtime:%d/%m/%Y %T}}"


def build_argv(
    profile: Profile,
    run_dir: Path,
    label: str,
    credentials: dict[str, str] | None = None,
    t0: int | None = None,
) -> list[str]:
    """The full ffmpeg argv for one run. Pure: same inputs, same argv.

    A network camera is read through its ffconcat script in `run_dir` (`camera_scripts`), so its
    URL and password are not in the argv.

    For a live kit, `t0` (a whole wall-clock second at launch) is subtracted from every
    input's wall-clock timestamps, so the segment list's times are wall clock − t0 (R18).
    A camera-timed kit (`camera_timed`) keeps the camera's own timestamps instead, and a second
    output prints each of its first ORIGIN_WINDOW_S seconds of sound frames (`origin_sample`), from
    which the run's origin is learned by when they arrive (recorder.origin).
    """
    creds = credentials or {}
    live = is_live(profile)
    if live and t0 is None:
        raise CaptureError("a live kit needs the run's wall-clock origin t0")
    streams: list[Any] = []
    for cam in profile.cameras:
        if cam.source in private_input.NETWORK_SOURCES:
            camera_url(cam, creds)  # a template this station cannot fill is an error now, not in ffmpeg
    own_clock = camera_timed(profile)
    cam_inputs = [camera_input(c, run_dir, t0 if live else None, own_clock) for c in profile.cameras]
    origin_probe = None
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
            sound = cam_inputs[idx].audio
            if own_clock and origin_probe is None:
                split = sound.filter_multi_output("asplit")
                sound = split[0]
                origin_probe = split[1].filter("atrim", duration=ORIGIN_WINDOW_S).filter("ashowinfo")
            streams.append(sound)
        else:
            streams.append(microphone_input(mic, creds, t0 if live else None).audio)
    enc = profile.encode
    seg = profile.segment.seconds
    any_copy = any(c.passthrough for c in profile.cameras)
    opts: dict[str, Any] = {
        "acodec": enc.audio_codec,
        "audio_bitrate": f"{enc.audio_bitrate_kbps}k",
        "ar": AUDIO_RATE,
        "f": "segment",
        "segment_time": seg,
        "segment_format": "mpegts",
        "segment_format_options": "flush_packets=1",
        "segment_list": str(run_dir / SEGMENT_LIST),
        "segment_list_type": "csv",
        "reset_timestamps": 0,
        "max_muxing_queue_size": 1024,
    }
    if live:
        # One wall clock for every input: keep the stamped times, never re-zero them.
        opts.update({"copyts": None, "avoid_negative_ts": "disabled", "fps_mode": "passthrough",
                     "segment_format_options": "mpegts_copyts=1:flush_packets=1"})
    if any_copy:
        opts["vcodec"] = "copy"
        if live:
            # An RTSP camera's first packet (SPS/PPS + key frame) can arrive unstamped and would be
            # written at 0: give it the next packet's time instead (dropping it loses the key frame).
            opts["bsf:v"] = r"setts=pts=if(eq(PTS\,NOPTS)\,NEXT_PTS\,PTS):dts=if(eq(DTS\,NOPTS)\,NEXT_DTS\,DTS)"
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
    level = "warning"
    if origin_probe is not None:
        out = ffmpeg.merge_outputs(out, ffmpeg.output(origin_probe, "-", f="null"))
        # ashowinfo's lines are info; tagged with their level, the supervisor keeps only warnings and errors
        level = "level+info"
    argv: list[str] = ffmpeg.compile(out, cmd="ffmpeg")
    return [argv[0], "-hide_banner", "-nostdin", "-nostats", "-loglevel", level, *argv[1:]]


_ORIGIN_LINE = re.compile(r"^\[Parsed_ashowinfo_\d+ @ [^]]*\] (?:\[info\] )?n:\d+ pts:-?\d+ pts_time:(-?[0-9.]+) ")


def origin_sample(line: str) -> float | None:
    """The timestamp (s, as in the segment list) of the sound frame an ashowinfo line reports, else None."""
    m = _ORIGIN_LINE.match(line)
    return float(m.group(1)) if m else None


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


def decode_error(path: Path, timeout: float = 60.0) -> str:
    """Decode a segment fully, by the verifier's own V15 rule; its first error, "" if it decodes."""
    ok, _duration, error = probe_media_file(path, timeout)
    if error == DECODE_TIMED_OUT:
        raise CaptureError(f"ffprobe could not decode {path} to check it in {timeout:.0f} s")
    return "" if ok else error


def first_media_us(path: Path, timeout: float = 20.0) -> int | None:
    """The earliest real timestamp among a segment's first packets (µs after the run's t0).

    The first packet of a copied RTSP stream can come without a timestamp and is written
    as 0; the segment list then says the run's first segment starts at t0, which it does not.
    """
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-read_intervals", "%+#24", "-show_entries", "packet=pts_time",
             "-of", "csv=p=0", str(path)],
            capture_output=True, timeout=timeout, check=False, text=True,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    times = []
    for line in proc.stdout.split():
        value = line.strip().strip(",")
        try:
            t = float(value)
        except ValueError:
            continue
        if t > 0:
            times.append(t)
    return round(min(times) * 1e6) if times else None
