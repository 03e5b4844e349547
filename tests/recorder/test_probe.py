"""Health probes: each check fails for real (the peers switched to the fault) and passes on a
good signal; the pure analysis and the discovery parsers are pinned on synthetic data."""

from __future__ import annotations

import argparse
import email.utils
import http.server
import json
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from recorder import devices, probe_cli
from recorder.clock import FakeClock
from recorder.probe import (
    DBFS_FLOOR,
    AudioThresholds,
    FrameThresholds,
    ProbeResult,
    all_ok,
    analyse_audio,
    analyse_frames,
    clock_offset_from_http,
    grab_frames,
    probe_camera,
    probe_clock,
    probe_disk,
    probe_microphone,
    probe_store,
)
from storage.file import FileStore
from tests.plugins.devices import CameraPeer, MicPeer

RATE = 48000
CAMERA_TIMEOUT_S = 15.0


def by_check(results: list[ProbeResult]) -> dict[str, ProbeResult]:
    return {r.check: r for r in results}


def failing(results: list[ProbeResult]) -> set[str]:
    return {r.check for r in results if not r.ok}


# --- synthetic pictures ---------------------------------------------------------------------------

def textured(seed: int, size: tuple[int, int] = (320, 180)) -> npt.NDArray[np.uint8]:
    """A detailed BGR picture (noise over a checkerboard), different for every seed."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // 16) + (xx // 16)) % 2 == 0, 60, 190).astype(np.int16)
    grey = np.clip(board + rng.integers(-20, 20, size=(h, w)), 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1)


def smooth(shift: int, size: tuple[int, int] = (320, 180)) -> npt.NDArray[np.uint8]:
    """Large shapes seen through a badly focused lens: contrast, motion, no fine detail."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where((((xx + shift) // 64) + (yy // 64)) % 2 == 0, 50, 200).astype(np.uint8)
    grey = cv2.GaussianBlur(board, (0, 0), 12)
    return np.stack([grey] * 3, axis=-1)


def test_analyse_frames_passes_a_moving_detailed_picture() -> None:
    results = analyse_frames([textured(i) for i in range(8)], (320, 180))
    assert all_ok(results), results
    assert set(by_check(results)) == {"camera.frames", "camera.size", "camera.black", "camera.frozen",
                                      "camera.covered", "camera.focus"}


def test_analyse_frames_finds_black() -> None:
    frames = [np.zeros((180, 320, 3), np.uint8) for _ in range(5)]
    results = by_check(analyse_frames(frames, (320, 180)))
    assert not results["camera.black"].ok
    assert results["camera.black"].value == 0.0
    assert "black" in results["camera.black"].reason


def test_analyse_frames_finds_frozen_but_not_black() -> None:
    still = textured(1)
    assert failing(analyse_frames([still.copy() for _ in range(6)], (320, 180))) == {"camera.frozen"}


def test_analyse_frames_ignores_one_odd_frame_in_a_frozen_window() -> None:
    # a keyframe refresh or the flash changes one frame; the median keeps the verdict
    frames = [textured(1)] * 6 + [textured(2)]
    assert "camera.frozen" in failing(analyse_frames(frames, None))


def test_analyse_frames_finds_a_covered_lens() -> None:
    rng = np.random.default_rng(3)
    frames = [np.full((180, 320, 3), 90, np.uint8) + rng.integers(0, 2, (180, 320, 3), dtype=np.uint8)
              for _ in range(5)]
    found = failing(analyse_frames(frames, (320, 180)))
    assert {"camera.covered", "camera.focus"} <= found
    assert "camera.black" not in found


def test_analyse_frames_finds_out_of_focus() -> None:
    assert failing(analyse_frames([smooth(4 * i) for i in range(6)], (320, 180))) == {"camera.focus"}


def test_analyse_frames_without_focus_still_finds_covered_and_frozen() -> None:
    """Health while recording leaves the focus out (the Laplacian is most of the CPU): the rest is judged alike."""
    rng = np.random.default_rng(3)
    flat = np.full((180, 320, 3), 90, np.uint8) + rng.integers(0, 2, (180, 320, 3), dtype=np.uint8)
    results = by_check(analyse_frames([flat.copy() for _ in range(5)], (320, 180), focus=False))
    assert "camera.focus" not in results
    assert {c for c, r in results.items() if not r.ok} == {"camera.covered", "camera.frozen"}
    blurred = [smooth(4 * i) for i in range(6)]
    assert all_ok(analyse_frames(blurred, (320, 180), focus=False))
    assert by_check(analyse_frames(blurred, (320, 180)))["camera.focus"].ok is False


def test_analyse_frames_checks_size_and_accepts_grey() -> None:
    grey = [np.asarray(cv2.cvtColor(textured(i), cv2.COLOR_BGR2GRAY), np.uint8) for i in range(4)]
    results = by_check(analyse_frames(grey, (1280, 720)))
    assert not results["camera.size"].ok
    assert (results["camera.size"].value, results["camera.size"].threshold) == ("320x180", "1280x720")
    assert all_ok([r for r in results.values() if r.check != "camera.size"])


def test_analyse_frames_needs_frames() -> None:
    results = analyse_frames([textured(0)], (320, 180))
    assert [(r.check, r.ok) for r in results] == [("camera.frames", False)]
    assert not all_ok(analyse_frames([], None))


def test_analyse_frames_uses_injected_thresholds() -> None:
    frames = [textured(i) for i in range(4)]
    strict = FrameThresholds(focus_laplacian=1e9)
    assert failing(analyse_frames(frames, None, thresholds=strict)) == {"camera.focus"}


# --- synthetic sound ------------------------------------------------------------------------------

def tone(dbfs: float = -9.0, seconds: float = 1.0, hz: float = 1000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(RATE * seconds)) / RATE
    amplitude = np.sqrt(2) * 10 ** (dbfs / 20) * 32768
    samples: npt.NDArray[np.int16] = np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return samples


def test_analyse_audio_passes_a_tone_and_reports_its_level() -> None:
    results = by_check(analyse_audio(tone(-9.0), RATE))
    assert all_ok(list(results.values()))
    assert results["mic.silent"].value == pytest.approx(-9.0, abs=0.05)
    assert results["mic.clipping"].value == 0.0


def test_analyse_audio_accepts_float_and_stereo() -> None:
    stereo = np.stack([tone(-20.0), tone(-20.0)], axis=1).astype(np.float32) / 32768
    results = by_check(analyse_audio(stereo, RATE))
    assert results["mic.silent"].value == pytest.approx(-20.0, abs=0.05)
    assert results["mic.samples"].value == pytest.approx(2.0)  # both channels count


def test_analyse_audio_calls_a_law_digital_silence_silent() -> None:
    # G.711 A-law code 0x55 decodes to +-8: -72.2 dBFS, not -inf
    alaw_silence = np.resize(np.array([8, -8], np.int16), RATE)
    result = by_check(analyse_audio(alaw_silence, RATE))["mic.silent"]
    assert not result.ok
    assert result.value == pytest.approx(-72.25, abs=0.05)


def test_analyse_audio_floors_exact_silence() -> None:
    result = by_check(analyse_audio(np.zeros(RATE, np.int16), RATE))["mic.silent"]
    assert (result.ok, result.value) == (False, DBFS_FLOOR)


def test_analyse_audio_finds_clipping() -> None:
    hot = np.clip(tone(0.0).astype(np.int32) * 3, -32768, 32767).astype(np.int16)
    results = by_check(analyse_audio(hot, RATE))
    assert not results["mic.clipping"].ok
    assert isinstance(results["mic.clipping"].value, float) and results["mic.clipping"].value > 50
    assert results["mic.silent"].ok


def test_analyse_audio_needs_enough_sound() -> None:
    results = analyse_audio(tone(seconds=0.05), RATE, thresholds=AudioThresholds(min_seconds=0.25))
    assert [(r.check, r.ok) for r in results] == [("mic.samples", False)]


# --- disk, clock, store ---------------------------------------------------------------------------

def test_disk_probe_passes_with_room_and_fails_above_free_space(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert probe_disk(tmp_path, 1).ok
    result = probe_disk(tmp_path, free + 2**40)
    assert not result.ok
    assert result.threshold == free + 2**40
    assert isinstance(result.value, int) and result.value < free + 2**40
    missing = probe_disk(tmp_path / "nope", 1)
    assert not missing.ok and "cannot read free space" in missing.reason


def test_clock_probe_against_tolerance() -> None:
    assert probe_clock(0.4, 2.0).ok
    late = probe_clock(-5.0, 2.0)
    assert not late.ok and "5.000 s ahead of" in late.reason
    assert not probe_clock(125.0, 2.0).ok


REFERENCE_US = FakeClock().now_us()


class _TimeReference(http.server.BaseHTTPRequestHandler):
    """An HTTP server whose Date header says REFERENCE_US (FakeClock's starting time)."""

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        return email.utils.formatdate(REFERENCE_US / 1e6, usegmt=True)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def date_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TimeReference)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_clock_probe_with_an_http_time_reference(date_server: http.server.ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{date_server.server_address[1]}/"
    station = FakeClock()  # the reference serves FakeClock's time too
    assert probe_clock(clock_offset_from_http(url, clock=station), 2.0).ok
    station.advance(3600)  # the station's clock runs an hour ahead
    offset = clock_offset_from_http(url, clock=station)
    assert offset == pytest.approx(-3600, abs=1)
    assert not probe_clock(offset, 2.0).ok


def test_store_probe(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    assert probe_store(store).ok
    shutil.rmtree(tmp_path / "store")
    result = probe_store(store)
    assert not result.ok and "not a writable directory" in result.reason


# --- the real camera ------------------------------------------------------------------------------

@pytest.mark.device
def test_camera_probe_passes_on_the_normal_picture(camera_peer: CameraPeer) -> None:
    frames = grab_frames(camera_peer.url, 15, CAMERA_TIMEOUT_S)
    results = analyse_frames(frames, camera_peer.size)
    assert all_ok(results), results
    assert by_check(results)["camera.size"].value == "640x360"
    # the same window against the wrong expected size fails on size alone
    assert failing(analyse_frames(frames, (1280, 720))) == {"camera.size"}


@pytest.mark.device
@pytest.mark.parametrize(("fault", "fails"), [
    ("black", "camera.black"),
    ("frozen", "camera.frozen"),
    ("blur", "camera.focus"),
    ("cover", "camera.covered"),
])
def test_camera_probe_fails_on_a_faulty_picture(camera_peer: CameraPeer, fault: str, fails: str) -> None:
    camera_peer.control(fault)
    results = probe_camera(camera_peer.url, camera_peer.size, timeout_s=CAMERA_TIMEOUT_S)
    assert by_check(results)["camera.frames"].ok
    assert fails in failing(results), results
    if fault == "frozen":
        assert failing(results) == {"camera.frozen"}
    if fault == "blur":
        assert failing(results) == {"camera.focus"}


@pytest.mark.device
@pytest.mark.parametrize("fault", ["stall", "stop"])
def test_camera_probe_fails_when_no_frames_come(camera_peer: CameraPeer, fault: str) -> None:
    camera_peer.control(fault)
    results = probe_camera(camera_peer.url, camera_peer.size, timeout_s=4.0)
    assert [(r.check, r.ok) for r in results] == [("camera.frames", False)]


# --- the real microphone --------------------------------------------------------------------------

@pytest.mark.device
@pytest.mark.parametrize("signal", ["tone", "beep"])
def test_microphone_probe_passes_on_sound(mic_peer: MicPeer, signal: str) -> None:
    mic_peer.control(signal)
    results = probe_microphone(mic_peer.source, seconds=1.0)
    assert all_ok(results), results
    if signal == "tone":
        assert by_check(results)["mic.silent"].value == pytest.approx(-9.0, abs=0.5)


@pytest.mark.device
def test_microphone_probe_fails_on_silence(mic_peer: MicPeer) -> None:
    mic_peer.control("silence")
    results = by_check(probe_microphone(mic_peer.source, seconds=1.0))
    assert results["mic.samples"].ok
    assert not results["mic.silent"].ok
    assert results["mic.clipping"].ok


@pytest.mark.device
def test_microphone_probe_fails_on_clipping(mic_peer: MicPeer) -> None:
    mic_peer.control("clip")
    results = by_check(probe_microphone(mic_peer.source, seconds=1.0))
    assert not results["mic.clipping"].ok
    assert results["mic.clipping"].value == pytest.approx(70, abs=5)
    assert results["mic.silent"].ok


def test_microphone_probe_fails_on_a_missing_source() -> None:
    # PulseAudio refuses the stream (no daemon, or no such source): a failing check, not a crash
    results = probe_microphone("no-such-source.monitor", seconds=0.5)
    assert not all_ok(results)


# --- the command line -----------------------------------------------------------------------------

def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="irms-agent")
    probe_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = int(args.func(args))
    return code, capsys.readouterr().out


@pytest.mark.device
def test_probe_command_passes_a_working_room(camera_peer: CameraPeer, mic_peer: MicPeer, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["probe", "--camera", camera_peer.url, "--size", "640x360", "--mic", mic_peer.source,
                         "--store", str(tmp_path / "store"), "--disk", str(tmp_path), "--min-free", "1M",
                         "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["ok"], out
    checks = {(c["check"], c["device"]) for c in report["checks"]}
    assert ("camera.black", camera_peer.url) in checks
    assert ("mic.silent", mic_peer.source) in checks
    assert {"store.reachable", "disk.free"} <= {c for c, _ in checks}


@pytest.mark.device
def test_probe_command_prints_a_failing_row_per_check(camera_peer: CameraPeer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    camera_peer.control("black")
    code, out = run_cli(["probe", "--camera", camera_peer.url, "--disk", str(tmp_path), "--min-free", "1P",
                         "--store", "s3://key:secret@127.0.0.1:1/bucket"], capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "DEVICE", "MEASURED", "THRESHOLD", "VERDICT"]
    row = next(line for line in lines if line.startswith("camera.black"))
    assert camera_peer.url in row and "FAIL: mean luma 0.0" in row
    assert any(line.startswith("disk.free") and "FAIL" in line for line in lines)
    store_row = next(line for line in lines if line.startswith("store.reachable"))
    assert "FAIL" in store_row and "secret" not in store_row
    assert "failed" in lines[-1]


def test_probe_command_without_anything_to_probe(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(["probe"], capsys)
    assert code == 2
    with pytest.raises(SystemExit):
        run_cli(["probe", "--size", "big"], capsys)


def test_size_arguments() -> None:
    assert probe_cli.frame_size("1280x720") == (1280, 720)
    assert probe_cli.byte_count("2G") == 2 * 2**30
    assert probe_cli.byte_count("500MiB") == 500 * 2**20
    assert probe_cli.byte_count("4096") == 4096
    with pytest.raises(argparse.ArgumentTypeError):
        probe_cli.byte_count("lots")


@pytest.mark.device
def test_devices_command_lists_the_camera_and_the_microphone(camera_peer: CameraPeer, mic_peer: MicPeer,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["devices", "--camera", camera_peer.url, "--json"], capsys)
    report = json.loads(out)
    assert code == 0
    [camera] = report["network"]
    assert camera | {"url": None} == {"url": None, "ok": True, "video_codec": "h264", "width": 640, "height": 360,
                                      "fps": 25.0, "audio_codec": "pcm_alaw", "sample_rate": 8000, "error": ""}
    names = {(a["backend"], a["name"]) for a in report["audio"]}
    assert ("pulse", mic_peer.source) in names
    assert ("pyaudio", "pulse") in names


# --- discovery parsers (captured tool output) -----------------------------------------------------

# `v4l2-ctl -d /dev/video0 --list-formats-ext` (v4l-utils 1.22) for a UVC webcam; this machine has
# no V4L2 devices, so the parser is pinned on text as the tool prints it.
V4L2_CTL_OUTPUT = """\
ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.067s (15.000 fps)
\t\tSize: Discrete 1280x720
\t\t\tInterval: Discrete 0.100s (10.000 fps)
\t[1]: 'MJPG' (Motion-JPEG, compressed)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.040s (25.000 fps)
\t\tSize: Stepwise 16x16 - 1280x720 with step 1/1
\t\t\tInterval: Stepwise 0.033s - 1.000s with step 0.000s (1.000-30.000 fps)
"""

V4L2_CTL_OLD_OUTPUT = """\
ioctl: VIDIOC_ENUM_FMT
\tIndex       : 0
\tType        : Video Capture
\tPixel Format: 'YUYV'
\tName        : YUYV 4:2:2
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.033s (30.000 fps)
"""

PACTL_SOURCES = (
    "0\talsa_input.usb-Logitech_C920-02.analog-stereo\tmodule-alsa-card.c\ts16le 2ch 32000Hz\tSUSPENDED\n"
    "1\troommic.monitor\tmodule-null-sink.c\ts16le 1ch 48000Hz\tIDLE\n"
)


def test_parse_v4l2_formats() -> None:
    modes = devices.parse_v4l2_formats(V4L2_CTL_OUTPUT)
    assert modes == (
        devices.VideoMode("YUYV", "YUYV 4:2:2", 640, 480, (30.0, 15.0)),
        devices.VideoMode("YUYV", "YUYV 4:2:2", 1280, 720, (10.0,)),
        devices.VideoMode("MJPG", "Motion-JPEG, compressed", 1920, 1080, (30.0, 25.0)),
        devices.VideoMode("MJPG", "Motion-JPEG, compressed", 1280, 720, (30.0,)),
    )
    assert devices.parse_v4l2_formats(V4L2_CTL_OLD_OUTPUT) == (
        devices.VideoMode("YUYV", "YUYV 4:2:2", 640, 480, (30.0,)),
    )
    assert devices.parse_v4l2_formats("ioctl: VIDIOC_ENUM_FMT\n\tType: Metadata Capture\n") == ()


def test_list_video_devices_reads_sysfs_and_runs_v4l2_ctl_with_a_timeout(tmp_path: Path) -> None:
    for node, name in (("video0", "HD Pro Webcam C920"), ("video1", "HD Pro Webcam C920")):
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
    calls: list[tuple[list[str], float]] = []

    def fake_run(argv: Sequence[str], timeout_s: float) -> str:
        calls.append((list(argv), timeout_s))
        return V4L2_CTL_OUTPUT if argv[2] == "/dev/video0" else "ioctl: VIDIOC_ENUM_FMT\n"

    found = devices.list_video_devices(tmp_path, run=fake_run, v4l2_ctl="/usr/bin/v4l2-ctl")
    assert [(d.path, d.name, len(d.modes)) for d in found] == [
        ("/dev/video0", "HD Pro Webcam C920", 4), ("/dev/video1", "HD Pro Webcam C920", 0)]
    assert calls[0] == (["/usr/bin/v4l2-ctl", "-d", "/dev/video0", "--list-formats-ext"], devices.TOOL_TIMEOUT_S)
    without_tool = devices.list_video_devices(tmp_path, v4l2_ctl="")
    assert [d.error for d in without_tool] == ["v4l2-ctl not installed: formats unknown"] * 2
    assert devices.list_video_devices(tmp_path / "absent") == []


def test_parse_pactl_sources() -> None:
    assert devices.parse_pactl_sources(PACTL_SOURCES) == [
        devices.AudioSource("alsa_input.usb-Logitech_C920-02.analog-stereo", "pulse", 0, 2, 32000,
                            "s16le SUSPENDED"),
        devices.AudioSource("roommic.monitor", "pulse", 1, 1, 48000, "s16le IDLE"),
    ]


def test_parse_ffprobe_streams_and_argv() -> None:
    text = json.dumps({"streams": [
        {"codec_type": "video", "codec_name": "h264", "width": 1280, "height": 720, "avg_frame_rate": "25/1"},
        {"codec_type": "audio", "codec_name": "aac", "sample_rate": "16000"},
    ]})
    cam = devices.parse_ffprobe_streams(text, "rtsp://admin:pw@10.0.0.5/stream1")
    assert cam == devices.NetworkCamera("rtsp://admin:***@10.0.0.5/stream1", True, "h264", 1280, 720, 25.0,
                                        "aac", 16000)
    assert not devices.parse_ffprobe_streams('{"streams": []}', "rtsp://x/").ok
    assert not devices.parse_ffprobe_streams("garbage", "rtsp://x/").ok
    argv = devices.ffprobe_argv(Path("/private/camera.ffconcat"), 7)
    assert argv[argv.index("-f") + 1] == "concat" and argv[-2:] == ["-i", "/private/camera.ffconcat"]
    script = devices.camera_script("rtsp://admin:it's@10.0.0.5/stream1", 7)
    assert "file 'rtsp://admin:it'\\''s@10.0.0.5/stream1'" in script
    assert "option rtsp_transport 'tcp'" in script and "option timeout '7000000'" in script
