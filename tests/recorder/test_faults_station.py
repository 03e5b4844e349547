"""Faults of the station around a recording: a second agent, a full disk, clock steps, a dead camera.

Each test runs the real agent (ffmpeg, the journal, a store), causes the fault the way it happens
on a station, and asserts that the session verifies with the fault declared and that the next
session records and uploads.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.processes import free_port
from tests.plugins.recording import Station
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
