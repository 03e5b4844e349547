"""The annex to the minutes (R06): its text, its QR seal, and `irms-verify seal` on a real session
recorded with a pause (synthetic kit, real ffmpeg)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from evidence.errors import FormatError
from evidence.formats import CaseInfo
from recorder.clock import SystemClock
from recorder.profile import load_profile
from recorder.session import Recorder, RecorderSettings
from recorder.station import load_station
from storage.file import FileStore
from tests.plugins.processes import wait_for
from tests.plugins.recording import Station, make_station
from verifier.annex import Seal, duration_text, local_time, parse_seal, utc_offset_label

CASE = CaseInfo("21/2026/HS-ST", "Đỗ Thị Hằng", ("Vũ Minh Tuấn", "Lê Thu Trang"),
                "Điều 183 Bộ luật Tố tụng hình sự 2015")
PAUSE = "Nghỉ giải lao theo đề nghị của luật sư"
RESUME = "Tiếp tục hỏi cung sau giải lao"


@dataclass
class Paused:
    station: Station
    store: Path
    session_id: str
    manifest: dict[str, Any]
    manifest_bytes: bytes


@pytest.fixture(scope="module")
def paused_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paused]:
    """One real session: about 3 s, a 2 s pause with a reason, about 3 s more."""
    base = tmp_path_factory.mktemp("annex")
    st = make_station(base, "st-annex-01")
    mp = pytest.MonkeyPatch()
    mp.setenv("IRMS_TRUST", str(st.trust))
    store = base / "store"
    rec = Recorder(load_station(st.home), FileStore(store), load_profile("synthetic"), SystemClock(),
                   RecorderSettings(site="HN-CA-01", room="P101"))
    sid = rec.start(CASE, None)
    result: dict[str, str] = {}
    worker = threading.Thread(target=lambda: result.update(reason=rec.record(sid, None)))
    worker.start()
    try:
        wait_for(lambda: len(rec.journal.segments(sid)) >= 1, 30)
        rec.mark("rights read")
        time.sleep(1.0)
        rec.pause(PAUSE)
        time.sleep(2.0)
        rec.resume(RESUME)
        n = len(rec.journal.segments(sid))
        wait_for(lambda: len(rec.journal.segments(sid)) > n, 30)
        time.sleep(1.0)
    finally:
        rec.stop_requested.set()
        worker.join(timeout=60)
    manifest = rec.close(sid, result.get("reason", "stopped"))
    assert rec.finish_uploads() == 0
    mp.undo()
    prefix = f"HN-CA-01/P101/{sid}/"
    yield Paused(st, store, sid, manifest, (store / prefix / "manifest.json").read_bytes())



def pdf_text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return " ".join(out.split())


@pytest.fixture(scope="module")
def annex_pdf(paused_session: Paused, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("annex-pdf") / "annex.pdf"
    res = paused_session.station.verify("annex", paused_session.session_id, "--store", str(paused_session.store),
                                        "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def vn(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, tz=ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%d/%m/%Y %H:%M")


@pytest.mark.slow
def test_annex_shows_the_case_the_times_the_pause_and_the_manifest_hash(paused_session: Paused,
                                                                       annex_pdf: Path) -> None:
    text = pdf_text(annex_pdf)
    m = paused_session.manifest
    for expected in (CASE.case_number, CASE.suspect, "Vũ Minh Tuấn; Lê Thu Trang", CASE.legal_basis,
                     "HN-CA-01 / P101", "st-annex-01", paused_session.session_id,
                     f"Bắt đầu: {vn(m['started_at_us'])} (UTC+7)",
                     f"Kết thúc: {vn(m['ended_at_us'])} (UTC+7)",
                     "Tạm dừng và gián đoạn: 1", f"Lý do: {PAUSE}", f"Lý do tiếp tục: {RESUME}",
                     f"Số đoạn ghi: {m['segment_count']}",
                     hashlib.sha256(paused_session.manifest_bytes).hexdigest(),
                     "Kết thúc bởi điều tra viên"):
        assert expected in text, expected
    marker = next(e for e in m["events"] if e["kind"] == "marker")
    assert f"Đánh dấu của điều tra viên: 1 1. {local_time(marker['at_us'], seconds=True)}: rights read" in text
    pause = m["interruptions"][0]
    assert f"Tạm dừng: từ {local_time(pause['start_us'], seconds=True)} đến " in text
    assert re.search(r"\b\d{2}/\d{2}/20\d{2} \d{2}:\d{2} \(UTC\+7\)", text)
    header = json.loads((paused_session.store / f"HN-CA-01/P101/{paused_session.session_id}/session.json")
                        .read_bytes())
    key_id = hashlib.sha256(base64.b64decode(header["station_key"])).hexdigest()[:32]
    assert key_id in text


@pytest.mark.slow
def test_qr_code_holds_the_seal_and_irms_verify_checks_it(paused_session: Paused, annex_pdf: Path,
                                                          tmp_path: Path) -> None:
    subprocess.run(["pdftoppm", "-png", "-r", "150", "-f", "1", "-l", "1", str(annex_pdf), str(tmp_path / "page")],
                   check=True, timeout=60, capture_output=True)
    png = next(tmp_path.glob("page*.png"))
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0, decoded.stderr
    seal = decoded.stdout.strip()
    digest = hashlib.sha256(paused_session.manifest_bytes).hexdigest()
    assert seal == f"IRMS1:{paused_session.session_id}:{digest}"

    st, store = paused_session.station, str(paused_session.store)
    ok = st.verify("seal", seal, "--store", store)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "seal matches" in ok.stdout and "VERIFIED" in ok.stdout

    wrong = f"IRMS1:{paused_session.session_id}:{hashlib.sha256(b'another manifest').hexdigest()}"
    bad = st.verify("seal", wrong, "--store", store)
    assert bad.returncode == 1 and "seal names manifest" in bad.stderr
    assert st.verify("seal", "IRMS1:not-a-seal", "--store", store).returncode == 2
    other = f"IRMS1:00000000-0000-4000-8000-00000000dead:{digest}"
    assert st.verify("seal", other, "--store", store).returncode != 0

    # The seal still matches, but the recording behind it was cut: the check fails as a whole.
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    seg = copy / f"HN-CA-01/P101/{paused_session.session_id}/seg/00000001.bin"
    seg.chmod(0o640)
    seg.unlink()
    cut = st.verify("seal", seal, "--store", str(copy))
    assert cut.returncode == 1 and "V05" in cut.stdout + cut.stderr


def test_seal_text_round_trip_and_formats() -> None:
    seal = Seal("0b7e9a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "ab" * 32)
    assert parse_seal(seal.text()) == seal
    assert parse_seal(f"  {seal.text()}\n") == seal
    for text in ("IRMS2:x:y", f"IRMS1:{seal.session_id}:{'AB' * 32}", f"IRMS1:{seal.session_id}:{'ab' * 31}",
                 f"IRMS1:{seal.session_id}"):
        with pytest.raises(FormatError):
            parse_seal(text)
    t = int(dt.datetime(2026, 3, 5, 23, 7, 59, tzinfo=dt.UTC).timestamp() * 1e6)
    assert local_time(t) == "06/03/2026 06:07"
    assert local_time(t, seconds=True) == "06/03/2026 06:07:59"
    assert utc_offset_label(t) == "(UTC+7)"
    assert duration_text(3_725_400_000) == "1 giờ 02 phút 05 giây (01:02:05)"
    assert duration_text(59_000_000) == "00 phút 59 giây (00:00:59)"
