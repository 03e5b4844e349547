"""Pause and resume need a reason; both become events and an interruption in the manifest (R04)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.formats import CaseInfo
from recorder.clock import SystemClock
from recorder.errors import RecorderError
from recorder.profile import load_profile
from recorder.session import Recorder, RecorderSettings
from recorder.station import load_station
from storage.file import FileStore
from tests.plugins.recording import Station

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def recording(station: Station, store: Path, case_number: str,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Recorder, str, dict[str, str]]]:
    """A session recording in a background thread (as the station screen runs it) until the block ends;
    yields the recorder, the session id and, once stopped, the loop's end reason in result["reason"]."""
    monkeypatch.setenv("IRMS_TRUST", str(station.trust))
    rec = Recorder(load_station(station.home), FileStore(store), load_profile("synthetic"),
                   SystemClock(), RecorderSettings(site="HN-CA-01", room="P101"))
    sid = rec.start(CaseInfo(case_number, "Lê Văn C", ("Phạm D",), "Điều 183"), None)
    result: dict[str, str] = {}
    worker = threading.Thread(target=lambda: result.update(reason=rec.record(sid, None)))
    worker.start()
    try:
        yield rec, sid, result
    finally:
        rec.stop_requested.set()
        worker.join(timeout=60)


def test_pause_with_reason_then_resume(station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with recording(station, tmp_path / "store", "3/2026/HS", monkeypatch) as (rec, sid, result):
        time.sleep(4.5)
        with pytest.raises(RecorderError, match="reason"):
            rec.pause("  ")
        rec.pause("Nghỉ giải lao theo đề nghị của luật sư")
        time.sleep(3)
        rec.resume("Tiếp tục hỏi cung")
        time.sleep(4.5)
    assert result["reason"] == "stopped"
    manifest = rec.close(sid, "stopped")
    rec.finish_uploads()
    assert [i["cause"] for i in manifest["interruptions"]] == ["pause"]
    gap = manifest["interruptions"][0]
    assert gap["reason"] == "Nghỉ giải lao theo đề nghị của luật sư"
    assert 2.5 < (gap["end_us"] - gap["start_us"]) / 1e6 < 5.0
    kinds = [e["kind"] for e in manifest["events"]]
    assert kinds.index("pause") < kinds.index("resume")
    res = station.verify("session", sid, "--store", str(tmp_path / "store"), "--json")
    assert res.returncode == 0, res.stdout
    assert json.loads(res.stdout)["interruptions"][0]["cause"] == "pause"


def test_a_pause_resumed_at_once_is_still_a_pause(station: Station, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Pause then resume before the capture loop looked (it was judging a segment's health, or the
    investigator clicked twice): the pause was lost, no event and no interruption. A pause asked
    for is a pause made, however short."""
    with recording(station, tmp_path / "store", "4/2026/HS", monkeypatch) as (rec, sid, _result):
        deadline = time.monotonic() + 60
        while not rec.journal.segments(sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        rec.pause("Luật sư xin trao đổi riêng")
        rec.resume("Tiếp tục")
        assert not rec.paused
        n = len(rec.journal.segments(sid))
        while len(rec.journal.segments(sid)) <= n + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    manifest = rec.close(sid, "stopped")
    assert [i["cause"] for i in manifest["interruptions"]] == ["pause"]
    assert manifest["interruptions"][0]["reason"] == "Luật sư xin trao đổi riêng"
    events = [(e["kind"], e["detail"]) for e in manifest["events"]]
    assert ("pause", "Luật sư xin trao đổi riêng") in events and ("resume", "Tiếp tục") in events
    rec.finish_uploads()
    res = station.verify("session", sid, "--store", str(tmp_path / "store"))
    assert res.returncode == 0, res.stdout
