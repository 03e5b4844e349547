"""Capture from the real RTSP camera peer and PulseAudio microphone: loss, return, synchronized inputs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.plugins.devices import CameraPeer, MicPeer, camera_and_mic_kit
from tests.plugins.recording import Station

pytestmark = pytest.mark.slow


def record_args(store: Path, seconds: int, *extra: str) -> tuple[str, ...]:
    return ("record", "--seconds", str(seconds), "--store", str(store), "--site", "HN-CA-01", "--room", "P101",
            "--case", "11/2026/HS", "--suspect", "A", "--interrogator", "B", "--legal-basis", "C", "--json", *extra)


def test_camera_lost_for_10_s_is_one_interruption_and_recording_resumes(
        station: Station, tmp_path: Path, camera_peer: CameraPeer) -> None:
    store = tmp_path / "store"

    def outage() -> None:
        time.sleep(8)
        camera_peer.stop()
        time.sleep(10)
        camera_peer.start()

    t = threading.Thread(target=outage)
    t.start()
    out = station.agent(*record_args(store, 30, "--kit", "ip-camera-rtsp", "--camera", f"wide={camera_peer.url}"))
    t.join()
    summary = json.loads(out.stdout)
    res = station.verify("session", summary["session_id"], "--store", str(store), "--json",
                         "--custodian-key", str(station.custodian_key))
    report = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout
    gaps = report["interruptions"]
    assert [g["cause"] for g in gaps] == ["device_lost"], gaps
    length = (gaps[0]["end_us"] - gaps[0]["start_us"]) / 1e6
    assert 9.0 <= length <= 15.0, f"interruption of {length:.1f} s for a 10 s outage"
    prefix = store / report["prefix"]
    records = [json.loads(p.read_text()) for p in sorted((prefix / "seg").glob("*.json"))]
    after = [r for r in records if r["start_us"] >= gaps[0]["end_us"]]
    assert sum(r["duration_us"] for r in after) / 1e6 >= 5.0, "recording did not resume by itself"
    assert len({r["run"] for r in records}) >= 2


def test_camera_and_separate_microphone_share_one_clock(station: Station, tmp_path: Path, camera_peer: CameraPeer,
                                                         mic_peer: MicPeer) -> None:
    kit = camera_and_mic_kit(tmp_path, camera_peer, mic_peer)
    store = tmp_path / "store"
    out = station.agent(*record_args(store, 8, "--kit", str(kit)))
    summary = json.loads(out.stdout)
    res = station.verify("session", summary["session_id"], "--store", str(store), "--json",
                         "--custodian-key", str(station.custodian_key))
    assert res.returncode == 0, res.stdout
    report = json.loads(res.stdout)
    assert report["interruptions"] == [] and 6.0 <= report["duration_s"] <= 9.5
    first = json.loads((store / report["prefix"] / "seg" / "00000000.json").read_text())
    header = json.loads((store / report["prefix"] / "session.json").read_text())
    # The first media is stamped with the wall clock, within a few seconds of the start request.
    assert 0 <= (first["start_us"] - header["started_at_us"]) / 1e6 < 4.0


def test_black_picture_and_silent_microphone_raise_health_events(station: Station, tmp_path: Path,
                                                                  camera_peer: CameraPeer, mic_peer: MicPeer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    kit = camera_and_mic_kit(tmp_path, camera_peer, mic_peer)
    monkeypatch.setenv("IRMS_HEALTH_EVERY_S", "3")

    def faults() -> None:
        time.sleep(5)
        camera_peer.control("black")
        mic_peer.control("silence")

    t = threading.Thread(target=faults)
    t.start()
    store = tmp_path / "store"
    out = station.agent(*record_args(store, 16, "--kit", str(kit)))
    t.join()
    sid = json.loads(out.stdout)["session_id"]
    res = station.verify("session", sid, "--store", str(store), "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout
    health = [e["detail"] for e in report["events"] if e["kind"] == "health"]
    assert any(d.startswith("camera.black") for d in health), report["events"]
    assert any(d.startswith("mic.silent") for d in health), report["events"]
    assert report["interruptions"] == []  # a black picture is recorded, and flagged, not cut


def test_microphone_lost_and_back_is_one_interruption(station: Station, tmp_path: Path, camera_peer: CameraPeer,
                                                      mic_peer: MicPeer) -> None:
    kit = camera_and_mic_kit(tmp_path, camera_peer, mic_peer)

    def unplug() -> None:
        time.sleep(6)
        mic_peer.shutdown()  # the microphone and its sound server disappear
        time.sleep(8)
        mic_peer.reset()  # plugged back in

    t = threading.Thread(target=unplug)
    t.start()
    store = tmp_path / "store"
    out = station.agent(*record_args(store, 26, "--kit", str(kit)))
    t.join()
    sid = json.loads(out.stdout)["session_id"]
    res = station.verify("session", sid, "--store", str(store), "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0, res.stdout
    assert [g["cause"] for g in report["interruptions"]] == ["device_lost"], report["interruptions"]
    gap = report["interruptions"][0]
    assert 5.0 <= (gap["end_us"] - gap["start_us"]) / 1e6 <= 16.0
    records = [json.loads(p.read_text()) for p in sorted((store / report["prefix"] / "seg").glob("*.json"))]
    assert sum(r["duration_us"] for r in records if r["start_us"] >= gap["end_us"]) / 1e6 >= 4.0


def test_first_segment_never_starts_before_the_run_when_ffprobe_gives_up(
        station: Station, tmp_path: Path, camera_peer: CameraPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a loaded station ffprobe may time out; the first segment's start must still not predate the launch."""
    import recorder.session as session_mod
    from evidence.formats import CaseInfo
    from recorder.clock import SystemClock
    from recorder.profile import load_profile
    from recorder.session import Recorder, RecorderSettings
    from recorder.station import load_station
    from storage.file import FileStore

    monkeypatch.setenv("IRMS_TRUST", str(station.trust))
    monkeypatch.setattr(session_mod, "first_media_us", lambda path: None)
    rec = Recorder(load_station(station.home), FileStore(tmp_path / "store"), load_profile("ip-camera-rtsp"),
                   SystemClock(), RecorderSettings(site="HN-CA-01", room="P101",
                                                   credentials={"url_wide": camera_peer.url}))
    sid = rec.start(CaseInfo("6/2026/HS", "A", ("B",), "C"), 7)
    rec.close(sid, rec.record(sid, rec.journal.session(sid).planned_end_us))
    rec.finish_uploads()
    (run,) = rec.journal.runs(sid)
    first = rec.journal.segments(sid)[0]
    assert first.start_us >= run.launched_us
    res = station.verify("session", sid, "--store", str(tmp_path / "store"), "--json")
    assert res.returncode == 0, res.stdout


def test_calibrate_measures_the_camera_against_the_microphone_and_saves_it(
        station: Station, tmp_path: Path, camera_peer: CameraPeer, mic_peer: MicPeer) -> None:
    kit = camera_and_mic_kit(tmp_path, camera_peer, mic_peer)
    mic_peer.control("beep")  # a beep on every whole second, when the camera shows its white frame
    out = station.agent("calibrate", "--kit", str(kit), "--seconds", "7", "--write", "--json")
    result = json.loads(out.stdout)
    assert result["flashes"] >= 3 and abs(result["offset_ms"]) < 300, result
    saved = (station.home / "station.toml").read_text()
    assert f'"camera.wide" = {result["latency_ms_after"]}' in saved


def test_a_camera_silent_at_the_start_is_declared_not_left_to_fail_v17(
        station: Station, tmp_path: Path, camera_peer: CameraPeer) -> None:
    """The camera answers but sends nothing for the session's first 6 s (or an overloaded station's
    encoder is that slow to start): the session's first media begins late. That time was never
    recorded: the manifest declares it from the session's start, and the session verifies."""
    store = tmp_path / "store"
    camera_peer.control("stall")
    resume = threading.Timer(6.0, camera_peer.control, ("resume",))
    resume.start()
    try:
        out = station.agent(*record_args(store, 14, "--kit", "ip-camera-rtsp", "--camera",
                                         f"wide={camera_peer.url}"))
    finally:
        resume.cancel()
    summary = json.loads(out.stdout)
    res = station.verify("session", summary["session_id"], "--store", str(store), "--json")
    report = json.loads(res.stdout)
    manifest = json.loads((store / report["prefix"] / "manifest.json").read_text())
    assert res.returncode == 0, (report["findings"], report["interruptions"], manifest["events"],
                                 [json.loads(p.read_text())["start_us"] - manifest["started_at_us"]
                                  for p in sorted((store / report["prefix"] / "seg").glob("*.json"))])
    first = json.loads((store / report["prefix"] / "seg" / "00000000.json").read_text())
    late_s = (first["start_us"] - manifest["started_at_us"]) / 1e6
    assert late_s >= 4.0, f"the first media began {late_s:.1f} s after the start: not a test of a late start"
    gaps = report["interruptions"]
    # Mostly ffmpeg waits for the first frames (the late start); now and then it gives up on the silent
    # camera first and the capture loop restarts it, which is a device loss from the start. Either way the
    # time is declared from the session's start to its first media.
    assert len(gaps) == 1 and gaps[0]["start_us"] == manifest["started_at_us"], gaps
    assert gaps[0]["end_us"] >= first["start_us"] - 500_000, gaps
    assert (gaps[0]["cause"], "capture began" in gaps[0]["reason"]) in {("encoder_stall", True),
                                                                        ("device_lost", False)}, gaps


def test_a_camera_whose_picture_falls_behind_keeps_its_sound_in_step(
        station: Station, tmp_path: Path, camera_peer: CameraPeer) -> None:
    """The camera's picture path falls 300 ms behind its sound mid-session (a starved camera's encoder
    queue, as seen at load average 14-18). Stamped on arrival, every later flash landed ~300 ms after
    its beep (and each connection had its own +3 to -52 ms before that); timed by the camera's own
    clock, picture and sound stay together: every flash and beep of the session within 5 ms."""
    from recorder.calibrate import audio_samples, beep_onsets, flash_beep_pairs, flash_times, video_luma

    store = tmp_path / "store"
    lag = threading.Timer(7.0, camera_peer.control, ("video-lag 300",))
    lag.start()
    try:
        out = station.agent(*record_args(store, 16, "--kit", "ip-camera-rtsp", "--camera", f"wide={camera_peer.url}"))
    finally:
        lag.cancel()
    sid = json.loads(out.stdout)["session_id"]
    res = station.verify("rebuild", sid, "--store", str(store), "--custodian-key", str(station.custodian_key),
                         "--out", str(tmp_path / "rec.mp4"))
    assert res.returncode == 0, res.stdout + res.stderr
    times, luma = video_luma(tmp_path / "rec.mp4")
    start, samples = audio_samples(tmp_path / "rec.mp4", rate=8000)  # the camera's own sound, 8 kHz
    flashes = [f for f in flash_times(times, luma) if f >= times[0] + 1.5]
    pairs = flash_beep_pairs(flashes, beep_onsets(start, samples, rate=8000))
    after_lag = [d for t, d in pairs if t >= times[0] + 9.0]
    assert len(pairs) >= 10 and len(after_lag) >= 4, pairs
    assert max(abs(d) for _, d in pairs) <= 5.0, pairs


def test_a_run_killed_in_its_first_segment_is_salvaged_where_its_media_was_captured(
        station: Station, tmp_path: Path, camera_peer: CameraPeer) -> None:
    """kill -9 while the run's first segment is still being written (ffmpeg's list says nothing yet):
    `recover` salvages it, and its record starts where its media was captured (the camera peer codes the
    capture time into every frame), within 0.5 s: not at the run's list origin, which on the camera's
    clock is the 1 s lead before its first timestamp (and on the wall clock up to 1 s before the launch)."""
    import signal

    from recorder.profile import PROFILE_DIR
    from tests.plugins.devices import capture_time_s, frame_numbers

    kit = tmp_path / "kit.toml"  # long segments: the first one is written for 5 s before it is listed
    kit.write_text((PROFILE_DIR / "ip-camera-rtsp.toml").read_text() + "\n[segment]\nseconds = 6\n")
    store = tmp_path / "store"
    proc = station.popen_agent(*record_args(store, 30, "--kit", str(kit), "--camera", f"wide={camera_peer.url}"))
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            firsts = list((station.home / "spool").glob("*/run000/seg000000.ts"))
            if firsts and firsts[0].stat().st_size > 60_000:
                break
            time.sleep(0.05)
        listed = firsts[0].parent / "segments.csv"
        assert firsts and not (listed.exists() and listed.read_text().strip()), "the first segment was listed already"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    out = station.agent("recover", "--store", str(store), "--site", "HN-CA-01", "--room", "P101", "--json")
    sid = json.loads(out.stdout)["closed"][0]
    res = station.verify("session", sid, "--store", str(store), "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0, report["findings"]
    first = json.loads((store / report["prefix"] / "seg" / "00000000.json").read_text())
    assert first["salvaged"] is True
    assert station.verify("rebuild", sid, "--store", str(store), "--custodian-key", str(station.custodian_key),
                          "--out", str(tmp_path / "rec.mp4")).returncode == 0
    number = frame_numbers(tmp_path / "rec.mp4", *camera_peer.size)[0]
    captured = capture_time_s(number, camera_peer.fps, first["start_us"] / 1e6)
    assert abs(first["start_us"] / 1e6 - captured) <= 0.5, (first["start_us"] / 1e6 - captured)
