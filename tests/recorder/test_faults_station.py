"""Faults of the station around a recording: a second agent, a full disk, clock steps, a dead camera.

Each test runs the real agent (ffmpeg, the journal, a store), causes the fault the way it happens
on a station, and asserts that the session verifies with the fault declared and that the next
session records and uploads.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from recorder.clock import TEST_STEP_ENV
from tests.plugins.processes import free_port
from tests.plugins.recording import BIN, Station, run_cli
from tests.recorder.test_faults import wait_for

pytestmark = pytest.mark.slow

SITE, ROOM = "HN-CA-01", "P101"


def record_args(store: Path | str, seconds: float, *extra: str) -> tuple[str, ...]:
    return ("record", "--seconds", str(seconds), "--store", str(store), "--site", SITE, "--room", ROOM,
            "--case", "10/2026/HS", "--suspect", "A", "--interrogator", "B", "--legal-basis", "C", "--json", *extra)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def verified(station: Station, store: Path | str, sid: str) -> dict[str, Any]:
    """The verifier's report of a session; asserts it verifies (media decoded with the custodian key)."""
    res = station.verify("session", sid, "--store", str(store), "--json", "--custodian-key",
                         str(station.custodian_key))
    assert res.returncode == 0, res.stdout + res.stderr
    return dict(json.loads(res.stdout))


def next_session_records_and_uploads(station: Station, store: Path | str) -> None:
    summary = station.record(str(store), 3)
    assert summary["segments"] and summary["pending_uploads"] == 0, summary
    verified(station, store, str(summary["session_id"]))


# --- 4. one agent per station home ------------------------------------------------------------------


def test_a_second_agent_on_a_recording_station_is_refused_and_touches_nothing(station: Station,
                                                                             tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = station.popen_agent(*record_args(store, 30))
    wait_for(lambda: len(list(store.rglob("seg/00000001.json"))) == 1, 60, "two sealed segments")
    # All at once: on a loaded machine an agent takes seconds to start, the recording must outlast them.
    others = [station.popen_agent(*args) for args in (
        record_args(store, 5), ("recover", "--store", str(store), "--site", SITE, "--room", ROOM),
        ("upload", "--store", str(store), "--site", SITE, "--room", ROOM))]
    for second in others:
        code, out, err = finish(second)
        assert code == 7, (second.args, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, err
        assert f"station home {station.home} is in use by irms-agent pid {first.pid} (record)" in lines[0]
        assert not out
    assert first.poll() is None, "the first recording ended before the others were refused: no test"
    code, out, err = finish(first)
    assert code == 0, err
    summary = json.loads(out)
    report = verified(station, store, summary["session_id"])
    assert report["interruptions"] == [] and summary["duration_s"] >= 29.0, (report, summary)
    # The refused processes neither resumed nor salvaged the live session: one run, one key, nothing salvaged.
    records = [json.loads(p.read_text()) for p in sorted((store / report["prefix"] / "seg").glob("*.json"))]
    assert {(r["run"], r["key_index"], r["salvaged"]) for r in records} == {(0, 0, False)}, records
    manifest = json.loads((store / report["prefix"] / "manifest.json").read_text())
    assert not [e for e in manifest["events"] if e["kind"] in ("recovered", "salvaged")], manifest["events"]
    next_session_records_and_uploads(station, store)


# --- 10. a dead camera at record ---------------------------------------------------------------------


def test_a_dead_camera_at_record_is_a_device_failure_with_a_declared_interruption(station: Station,
                                                                                   tmp_path: Path) -> None:
    store = tmp_path / "store"
    dead = f"rtsp://127.0.0.1:{free_port()}/Streaming/Channels/101"  # nobody serves it
    started = time.monotonic()
    proc = station.agent(*record_args(store, 30, "--kit", "ip-camera-rtsp", "--camera", f"wide={dead}"),
                         check=False)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert time.monotonic() - started < 28, "a dead camera kept the agent for the whole planned session"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("irms-agent: error: the kit's devices delivered nothing"), proc.stderr
    assert dead in lines[-1] and "Connection refused" in lines[-1] and "device_failure" in lines[-1], lines[-1]
    summary = json.loads(proc.stdout)
    assert summary["segments"] == 0 and summary["end_reason"] == "device_failure", summary
    report = verified(station, store, summary["session_id"])
    assert [i["cause"] for i in report["interruptions"]] == ["device_lost"], report["interruptions"]
    manifest = json.loads((store / report["prefix"] / "manifest.json").read_text())
    gap = manifest["interruptions"][0]
    assert gap["start_us"] == manifest["started_at_us"] and gap["end_us"] == manifest["ended_at_us"], manifest
    assert manifest["end_reason"] == "device_failure"
    next_session_records_and_uploads(station, store)


# --- 6. clock steps ----------------------------------------------------------------------------------


def agent_env(station: Station, clock_step: str = "") -> dict[str, str]:
    """The station's environment, with the agent's wall clock stepped (test-only IRMS_TEST_CLOCK_STEP)."""
    env = station.env()
    env.pop(TEST_STEP_ENV, None)
    if clock_step:
        env[TEST_STEP_ENV] = clock_step
    return env


def popen_agent(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "irms-agent"), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def load_session(store: Path, report: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    prefix = store / report["prefix"]
    manifest = json.loads((prefix / "manifest.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((prefix / "seg").glob("*.json"))]
    return manifest, records


def test_wall_clock_jumping_an_hour_forward_is_an_event_and_the_session_keeps_its_length(
        station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = run_cli("irms-agent", *record_args(store, 30), env=agent_env(station, "8:3600"), timeout=180)
    summary = json.loads(proc.stdout)
    assert summary["end_reason"] == "duration_reached" and summary["duration_s"] >= 29.0, summary
    report = verified(station, store, summary["session_id"])
    assert report["interruptions"] == []
    manifest, records = load_session(store, report)
    steps = [e for e in manifest["events"] if e["kind"] == "clock_step"]
    assert [e["detail"] for e in steps] == ["wall clock stepped +3600.000 s"], manifest["events"]
    # Session time: the manifest spans the media (no interruption here), not the wall clock's jump.
    media_us = sum(r["duration_us"] for r in records)
    span_us = manifest["ended_at_us"] - records[0]["start_us"]
    assert abs(span_us - media_us) < 1_000_000, (span_us, media_us)
    assert manifest["started_at_us"] <= steps[0]["at_us"] <= manifest["ended_at_us"]
    assert records[-1]["start_us"] + records[-1]["duration_us"] <= manifest["ended_at_us"] + 300_000
    next_session_records_and_uploads(station, store)


def test_clock_stepped_back_then_kill9_resumes_with_a_crash_interruption_that_ends_after_it_starts(
        station: Station, tmp_path: Path) -> None:
    # 30 s back rather than 5: the restarted agent must come up inside the step on a loaded machine too.
    store = tmp_path / "store"
    args = record_args(store, 24)
    first = popen_agent(agent_env(station, "4:-30"), *args)
    wait_for(lambda: len(list(store.rglob("seg/00000003.json"))) == 1, 90, "four sealed segments")
    first.kill()
    finish(first)
    proc = run_cli("irms-agent", *args, env=agent_env(station, "0:-30"), timeout=180)
    assert "resuming session" in proc.stderr, proc.stderr
    summary = json.loads(proc.stdout)
    report = verified(station, store, summary["session_id"])
    assert [i["cause"] for i in report["interruptions"]] == ["crash"], report["interruptions"]
    gap = report["interruptions"][0]
    assert gap["start_us"] <= gap["end_us"], gap
    manifest, records = load_session(store, report)
    steps = [e["detail"] for e in manifest["events"] if e["kind"] == "clock_step"]
    assert "wall clock stepped -30.000 s" in steps, manifest["events"]
    assert any("behind what the session holds after the restart" in d for d in steps), steps
    starts = [r["start_us"] for r in records]
    assert starts == sorted(starts) and manifest["ended_at_us"] > gap["end_us"]
    next_session_records_and_uploads(station, store)


class DateServer:
    """A loopback HTTP server whose Date header is this machine's real time: the clock reference."""

    def __init__(self) -> None:
        class Quiet(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/login"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_station_clock_an_hour_off_is_flagged_by_preflight_and_record(station: Station, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ref = DateServer()
    try:
        env = agent_env(station, "0:3600")
        probe = run_cli("irms-agent", "probe", "--clock-ref", ref.url, env=env, check=False)
        assert probe.returncode == 1, probe.stdout + probe.stderr
        assert re.search(r"clock is 36\d\d\.\d+ s ahead of the reference, tolerance 2 s", probe.stdout), probe.stdout
        proc = run_cli("irms-agent", *record_args(store, 4, "--clock-ref", ref.url), env=env, timeout=120)
    finally:
        ref.close()
    flag = [ln for ln in proc.stderr.splitlines() if "ahead of the reference" in ln]
    assert len(flag) == 1 and flag[0].startswith("irms-agent: warning: station clock is 36"), proc.stderr
    summary = json.loads(proc.stdout)
    report = verified(station, store, summary["session_id"])
    manifest, records = load_session(store, report)
    offsets = [e["detail"] for e in manifest["events"] if e["kind"] == "clock_offset"]
    assert len(offsets) == 1 and "ahead of the reference" in offsets[0], manifest["events"]
    assert all(abs(r["clock_offset_us"] - 3600e6) < 2e6 for r in records), [r["clock_offset_us"] for r in records]
    next_session_records_and_uploads(station, store)


@pytest.mark.s3
def test_an_s3_time_skew_refusal_says_the_clocks_differ(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    import minio.time

    from storage.errors import StoreConfigError
    from storage.url import open_store

    # A wrong secret with the clocks agreeing is still a credentials problem.
    wrong = re.sub(r"^s3://([^:]+):[^@]+@", r"s3://\1:not-the-secret@", s3_url)
    with pytest.raises(StoreConfigError, match="check the access key"):
        open_store(wrong).put("probe/clock", b"x")
    real = minio.time.utcnow
    monkeypatch.setattr(minio.time, "utcnow", lambda: real() + dt.timedelta(hours=1))  # the station's clock
    store = open_store(s3_url)
    with pytest.raises(StoreConfigError) as err:
        store.put("probe/clock", b"x")
    message = str(err.value)
    assert re.search(r"the station clock differs from the store's by \+360\d s", message), message
    assert "check the access key" not in message
