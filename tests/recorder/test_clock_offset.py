"""Each record carries the station's clock offset against the reference when it was sealed (R18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence.formats import CaseInfo
from recorder.clock import SystemClock
from recorder.profile import load_profile
from recorder.session import Recorder, RecorderSettings
from recorder.station import load_station
from storage.file import FileStore
from tests.plugins.recording import Station

pytestmark = pytest.mark.slow


def test_records_carry_the_measured_offset(station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRMS_TRUST", str(station.trust))
    store = FileStore(tmp_path / "store")
    rec = Recorder(load_station(station.home), store, load_profile("synthetic"), SystemClock(),
                   RecorderSettings(site="HN-CA-01", room="P101"))
    measurements = iter([None, 1_250_000, 1_250_000, -40_000, -40_000, -40_000])
    rec.clock_offset_source = lambda: next(measurements, -40_000)  # server − station, as a server link measures
    sid = rec.start(CaseInfo("5/2026/HS", "A", ("B",), "C"), 6.5)
    rec.close(sid, rec.record(sid, rec.journal.session(sid).planned_end_us))
    rec.finish_uploads()
    prefix = rec.journal.session(sid).prefix
    offsets = [json.loads(store.get(f"{prefix}seg/{i:08d}.json"))["clock_offset_us"]
               for i in range(rec.journal.session(sid).next_index)]
    assert offsets[0] == 0  # nothing measured yet
    assert -1_250_000 in offsets and offsets[-1] == 40_000  # station − reference
