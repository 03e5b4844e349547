"""Faults of the station around a recording: a second agent, a full disk, clock steps, a dead camera.

Each test runs the real agent (ffmpeg, the journal, a store), causes the fault the way it happens
on a station, and asserts that the session verifies with the fault declared and that the next
session records and uploads.
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evidence.formats import CaseInfo
from recorder.clock import TEST_STEP_ENV, SystemClock
from recorder.profile import load_profile
from recorder.segmenter import SEGMENT_LIST
from recorder.session import Recorder, RecorderSettings
from recorder.station import load_station
from storage.file import FileStore
from tests.plugins.processes import free_port, wait_for
from tests.plugins.recording import BIN, Station, make_station, run_cli

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


def next_session_records_and_uploads(station: Station, store: Path | str, env: dict[str, str] | None = None) -> None:
    proc = run_cli("irms-agent", *record_args(store, 3), env=env or station.env())
    summary = json.loads(proc.stdout)
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
    # (A loaded machine generates the synthetic picture slower than real time: the length is not the point.)
    assert report["interruptions"] == [] and summary["end_reason"] == "duration_reached", (report, summary)
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
    assert summary["end_reason"] == "duration_reached", summary
    report = verified(station, store, summary["session_id"])
    assert report["interruptions"] == []
    manifest, records = load_session(store, report)
    steps = [e for e in manifest["events"] if e["kind"] == "clock_step"]
    assert [e["detail"] for e in steps] == ["wall clock stepped +3600.000 s"], manifest["events"]
    # The planned 30 s were recorded (the session did not stop 24 s early), and the manifest spans
    # them in session time, not the wall clock's jump. A loaded machine generates the synthetic
    # picture slower than real time, so the media may fall a little short of the span.
    span_us = manifest["ended_at_us"] - manifest["started_at_us"]
    assert 29_000_000 <= span_us <= 33_000_000, span_us
    media_us = sum(r["duration_us"] for r in records)
    assert 0.75 * span_us <= media_us <= span_us + 500_000, (media_us, span_us)
    assert manifest["started_at_us"] <= steps[0]["at_us"] <= manifest["ended_at_us"]
    # The last segment starts inside the span (within V17's tolerance), not an hour off it.
    assert records[-1]["start_us"] < manifest["ended_at_us"] + 1_000_000
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
        assert re.search(r"clock is (3599|360\d)\.\d+ s ahead of the reference, tolerance 2 s", probe.stdout), \
            probe.stdout
        proc = run_cli("irms-agent", *record_args(store, 4, "--clock-ref", ref.url), env=env, timeout=120)
    finally:
        ref.close()
    flag = [ln for ln in proc.stderr.splitlines() if "ahead of the reference" in ln]
    assert len(flag) == 1 and re.match(r"irms-agent: warning: station clock is (3599|360\d)\.", flag[0]), proc.stderr
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


# --- 5. the disk fills during a session --------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB file system (tmpfs) for a station home, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mnt = tmp_path / "smallfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", str(mnt)], check=True, timeout=30)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


def fill(path: Path) -> int:
    """Write zeros to `path` until the file system says it is full; the bytes written."""
    written = 0
    chunk = b"\0" * 2**20
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk) or 0
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                break
        with contextlib.suppress(OSError):
            while f.write(b"\0" * 4096):  # the last pages
                pass
    return written


def test_disk_full_for_10_s_is_a_store_full_interruption_and_capture_resumes(small_fs: Path,
                                                                              tmp_path: Path) -> None:
    station = make_station(small_fs / "station", "st-test-01")
    env = {**station.env(), "IRMS_MIN_FREE_BYTES": str(2**20)}
    store = tmp_path / "store"  # another file system: the store is not what fills
    proc = popen_agent(env, *record_args(store, 30))
    wait_for(lambda: len(list(store.rglob("seg/00000002.json"))) == 1, 60, "three sealed segments")
    filler = small_fs / "filler"
    fill(filler)
    time.sleep(10)
    filler.unlink()
    code, out, err = finish(proc, timeout=180)
    assert code == 0, err
    assert "Traceback" not in err, err
    summary = json.loads(out)
    report = verified(station, store, summary["session_id"])
    causes = {i["cause"] for i in report["interruptions"]}
    assert causes == {"store_full"}, report["interruptions"]
    gap = report["interruptions"][-1]
    full_s = (gap["end_us"] - report["interruptions"][0]["start_us"]) / 1e6
    assert 8.0 <= full_s <= 25.0, f"{full_s:.1f} s declared for a disk full for 10 s"
    manifest, records = load_session(store, report)
    assert [e for e in manifest["events"] if e["kind"] == "store_full"], manifest["events"]
    after = [r for r in records if r["start_us"] >= gap["end_us"]]
    assert sum(r["duration_us"] for r in after) / 1e6 >= 5.0, "capture did not resume by itself"
    # A segment torn by the full disk is kept for inspection, never sealed.
    for e in manifest["events"]:
        if e["kind"] == "torn_segment":
            assert (station.home / "inspect" / summary["session_id"] / e["detail"].split()[0]).exists(), e
    next_session_records_and_uploads(station, store, env)


def test_torn_segments_on_a_nearly_full_disk_are_kept_for_inspection_never_sealed(
        small_fs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments ffmpeg listed as finished, one cut short and one with a hole (writes that failed and
    later succeeded), on a disk below the resume threshold: neither is sealed, the gap is declared."""
    station = make_station(small_fs / "station", "st-test-01")
    monkeypatch.setenv("IRMS_TRUST", str(station.trust))
    store = FileStore(tmp_path / "store")
    rec = Recorder(load_station(station.home), store, load_profile("synthetic"), SystemClock(),
                   RecorderSettings(site=SITE, room=ROOM, min_free_bytes=24 * 2**20))
    sid = rec.start(CaseInfo("5/2026/HS", "A", ("B",), "C"), None)
    free = shutil.disk_usage(small_fs).free
    (small_fs / "filler").write_bytes(b"\0" * (free - 16 * 2**20))  # 16 MiB left: below the threshold
    run, sup = rec._new_run(sid)
    run_dir = Path(run.dir)
    wait_for(lambda: (run_dir / "seg000000.ts").exists(), 60, "the first segment")
    rec.journal.set_run_t0(sid, run.run, rec.clock.now_us())
    listed = lambda: len((run_dir / SEGMENT_LIST).read_text().splitlines()) if (run_dir / SEGMENT_LIST).exists() else 0  # noqa: E731
    wait_for(lambda: listed() >= 4, 60, "four listed segments")
    rec.capture_stopping(sid, "stopped")  # as the capture loop journals it: the span ends here, not after the
    sup.stop()                            # tearing below (which took over 3 s on a loaded machine: V17)
    n_listed = listed()
    cut, holed = run_dir / "seg000001.ts", run_dir / "seg000002.ts"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 3])
    data = bytearray(holed.read_bytes())
    third = len(data) // 3
    data[third: 2 * third] = bytes(third)
    holed.write_bytes(bytes(data))
    rec.end_run(sid, next(r for r in rec.journal.runs(sid) if r.run == run.run), "stopped")
    rec.close(sid, "stopped")
    assert rec.finish_uploads() == 0
    kept = sorted(p.name for p in (station.home / "inspect" / sid).iterdir())
    assert kept == ["run000-seg000001.ts", "run000-seg000002.ts"], kept
    report = verified(station, tmp_path / "store", sid)
    assert [i["cause"] for i in report["interruptions"]] == ["store_full"], report["interruptions"]
    assert report["segments"] == n_listed - 2
    manifest, _records = load_session(tmp_path / "store", report)
    torn = [e["detail"] for e in manifest["events"] if e["kind"] == "torn_segment"]
    assert torn[0].startswith("run000-seg000001.ts ") and "listed" in torn[0], torn
    assert torn[1].startswith("run000-seg000002.ts does not decode"), torn
    (small_fs / "filler").unlink()
    next_session_records_and_uploads(station, tmp_path / "store", {**station.env(), "IRMS_MIN_FREE_BYTES": str(2**20)})
