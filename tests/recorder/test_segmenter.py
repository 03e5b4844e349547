"""The ffmpeg argv is a pure function: assert on it, as users' ffmpeg will read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.errors import CaptureError, ProfileError
from recorder.profile import load_profile
from recorder.segmenter import (
    CAMERA_CLOCK,
    CAMERA_CLOCK_LEAD_S,
    GENERATED,
    ORIGIN_WINDOW_S,
    WALL_CLOCK,
    build_argv,
    camera_scripts,
    camera_timed,
    origin_sample,
    overlay_text,
    parse_segment_list,
    timing,
)


def opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_synthetic_argv_has_capped_bitrate_segments_and_overlay(tmp_path: Path) -> None:
    argv = build_argv(load_profile("synthetic"), tmp_path, "HN-CA-01/P101")
    assert argv[0] == "ffmpeg" and "-nostdin" in argv
    assert argv.count("-re") == 2  # both generated inputs paced in real time
    assert opt(argv, "-f") == "lavfi"
    assert opt(argv, "-maxrate") == "1500k" and opt(argv, "-bufsize") == "3000k"
    assert opt(argv, "-vcodec") == "libx264" and opt(argv, "-acodec") == "aac"
    assert opt(argv, "-segment_format") == "mpegts" and opt(argv, "-segment_time") == "2"
    assert opt(argv, "-segment_format_options") == "flush_packets=1"
    assert opt(argv, "-force_key_frames") == "expr:gte(t,n_forced*2)"
    assert opt(argv, "-segment_list") == str(tmp_path / "segments.csv")
    assert argv[-1] == str(tmp_path / "seg%06d.ts")
    graph = opt(argv, "-filter_complex")
    assert "drawtext=" in graph and "HN-CA-01/P101" in graph and "localtime" in graph


def test_argv_is_pure(tmp_path: Path) -> None:
    p = load_profile("synthetic")
    assert build_argv(p, tmp_path, "X") == build_argv(p, tmp_path, "X")


def test_overlay_text_strips_filter_syntax() -> None:
    assert overlay_text("P1:'%{x}") == "P1x  %{localtime:%d/%m/%Y %T}"


def test_segment_list_ignores_a_torn_last_line() -> None:
    text = "seg000000.ts,0.000000,2.021333\nseg000001.ts,2.021333,4.021333\nseg000002.ts,4.02"
    segs = parse_segment_list(text)
    assert [(s.file, s.start_us, s.end_us) for s in segs] == [
        ("seg000000.ts", 0, 2_021_333), ("seg000001.ts", 2_021_333, 4_021_333)]


def test_bad_profile_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((Path(__file__).parents[2] / "hardware_profiles" / "synthetic.toml").read_text()
                   .replace("fps = 25", "fps = 250").replace('role = "room"', 'role = "room"\nbogus = 1'))
    with pytest.raises(ProfileError, match=r"bad\.toml: (cameras\.0\.fps|microphones\.0\.bogus)"):
        load_profile(str(bad))
    with pytest.raises(ProfileError, match="not found"):
        load_profile("no-such-kit")
    broken = tmp_path / "broken.toml"
    broken.write_text("format = ")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(str(broken))


def test_live_rtsp_argv_keeps_one_wall_clock_and_stamps_the_first_packet(tmp_path: Path) -> None:
    """Cameras beside a separate microphone: wall-clock stamps shifted by -(t0 + latency), copied timestamps
    never re-zeroed, and the unstamped first packet given the next packet's time instead of 0."""
    creds = {"host": "10.0.0.5", "host2": "10.0.0.6", "user": "cam", "password": "s3cret"}
    profile = load_profile("two-camera-room")
    assert not camera_timed(profile)  # two cameras and a microphone: no capture clock they share
    argv = build_argv(profile, tmp_path, "HN-CA-01/P101", creds, t0=1_796_000_000)
    # The URL (and its password) is in a script ffmpeg reads, never in its argv (ps shows argv to everyone).
    assert not any("s3cret" in a for a in argv)
    script = tmp_path / "camera-wide.ffconcat"
    assert opt(argv, "-i") == str(script) and opt(argv, "-f") == "concat" and opt(argv, "-safe") == "0"
    scripts = camera_scripts(profile, tmp_path, creds)
    assert set(scripts) == {script, tmp_path / "camera-face.ffconcat"}
    assert "file 'rtsp://cam:s3cret@10.0.0.5:554/Streaming/Channels/101'" in scripts[script]
    assert "option rtsp_transport 'tcp'" in scripts[script] and "option fflags 'nobuffer'" in scripts[script]
    assert opt(argv, "-use_wallclock_as_timestamps") == "1"
    assert opt(argv, "-itsoffset") == "-1796000000.060"  # t0 + the profile's 60 ms camera latency
    assert argv.index("-itsoffset") < argv.index("-i")  # an input option, before its input
    assert "-copyts" in argv and opt(argv, "-avoid_negative_ts") == "disabled"
    assert opt(argv, "-fps_mode") == "passthrough"
    assert opt(argv, "-segment_format_options") == "mpegts_copyts=1:flush_packets=1"
    assert opt(argv, "-vcodec") == "copy" and "-filter_complex" not in argv  # no overlay on a copied picture
    assert opt(argv, "-bsf:v") == r"setts=pts=if(eq(PTS\,NOPTS)\,NEXT_PTS\,PTS):dts=if(eq(DTS\,NOPTS)\,NEXT_DTS\,DTS)"
    assert opt(argv, "-loglevel") == "warning" and "ashowinfo" not in " ".join(argv)


def test_a_camera_with_its_own_sound_keeps_the_cameras_clock(tmp_path: Path) -> None:
    """One RTSP camera giving picture and sound: its own timestamps (never arrival times), shifted by the
    lead so that nothing is negative, and its first seconds of sound printed to learn the run's origin."""
    creds = {"host": "10.0.0.5", "user": "cam", "password": "s3cret"}
    profile = load_profile("ip-camera-rtsp")
    assert camera_timed(profile)
    argv = build_argv(profile, tmp_path, "HN-CA-01/P101", creds, t0=1_796_000_000)
    assert not any("s3cret" in a for a in argv)
    assert "-use_wallclock_as_timestamps" not in argv
    assert opt(argv, "-itsoffset") == f"{CAMERA_CLOCK_LEAD_S:.3f}" and argv.index("-itsoffset") < argv.index("-i")
    assert "-copyts" in argv and opt(argv, "-vcodec") == "copy"
    graph = opt(argv, "-filter_complex")
    assert "[0:a]asplit=2" in graph and f"atrim=duration={ORIGIN_WINDOW_S}" in graph and "ashowinfo" in graph
    assert argv[-5] == "-map" and argv[-3:] == ["-f", "null", "-"]  # the printing branch goes nowhere
    assert opt(argv, "-loglevel") == "level+info"  # each line tagged: the supervisor keeps warnings and errors
    line = ("[Parsed_ashowinfo_2 @ 0x556f61700000] [info] n:12 pts:8320 pts_time:1.04 pos:-1 fmt:s16 channels:1 "
            "chlayout:mono rate:8000 nb_samples:160 checksum:0A1B2C3D plane_checksums: [ 0A1B2C3D ]")
    assert origin_sample(line) == 1.04
    assert origin_sample("[segment @ 0x55] Opening 'seg000001.ts' for writing") is None


def test_a_live_argv_without_its_wall_clock_origin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="needs the run's wall-clock origin"):
        build_argv(load_profile("ip-camera-rtsp"), tmp_path, "X", {"host": "h", "user": "u", "password": "p"})


def test_every_live_input_gets_its_own_latency_shift(tmp_path: Path) -> None:
    argv = build_argv(load_profile("usb-uvc"), tmp_path, "X", t0=100)
    shifts = [argv[i + 1] for i, a in enumerate(argv) if a == "-itsoffset"]
    assert len(shifts) == len([a for a in argv if a == "-i"])  # camera and microphone alike
    assert all(s.startswith("-100.") for s in shifts)
    assert "-copyts" in argv and opt(argv, "-vcodec") == "libx264"


def test_each_kit_is_timed_by_the_clock_its_devices_share() -> None:
    """Read from the devices the signed header lists, so a crashed session's runs are read as recorded."""
    kits = {name: timing(load_profile(name).devices_json())
            for name in ("synthetic", "ip-camera-rtsp", "two-camera-room", "usb-uvc")}
    assert kits == {"synthetic": GENERATED, "ip-camera-rtsp": CAMERA_CLOCK, "two-camera-room": WALL_CLOCK,
                    "usb-uvc": WALL_CLOCK}
    camera = {"kind": "camera", "role": "wide", "source": "rtsp"}
    own_sound = {"kind": "microphone", "role": "room", "source": "camera"}
    table = {"kind": "microphone", "role": "table", "source": "pulse"}
    assert timing([camera, own_sound]) == CAMERA_CLOCK
    assert timing([camera, own_sound, table]) == WALL_CLOCK  # a second clock: the wall clock for both
    assert timing([camera]) == WALL_CLOCK  # no sound to keep in step: arrival is enough
    assert timing([{**camera, "source": "http"}, own_sound]) == WALL_CLOCK  # no RTP timestamps over HTTP
