"""The live view never affects the recording (issue 15): with the server hung (it accepts connections and
never answers, as a server slowed by its live viewers or away would look), the event sender that asks it
who watches is stuck, yet capture seals every segment on time, the uploader stores each one as it is
sealed, markers and viewers still go into the signed manifest."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from evidence.formats import CaseInfo
from recorder.clock import SystemClock
from recorder.events import EventSender
from recorder.heartbeat import ServerLink
from recorder.profile import load_profile
from recorder.session import Recorder, RecorderSettings
from recorder.station import load_station
from storage.file import FileStore
from tests.plugins.processes import wait_for
from tests.plugins.recording import make_station

pytestmark = pytest.mark.slow
CASE = CaseInfo("16/2026/HS", "Trần Văn Bình", ["Lê Thu Trang"], "Điều 183 Bộ luật Tố tụng hình sự 2015")
SEGMENT_S = 2.0  # the synthetic kit's


def test_a_hung_server_slows_neither_capture_nor_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hung = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # take every connection, answer none
        hung.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(hung.accept()[0])
            except TimeoutError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    st = make_station(tmp_path, "st-live-01")
    monkeypatch.setenv("IRMS_TRUST", str(st.trust))
    store = FileStore(tmp_path / "store")
    clock = SystemClock()
    rec = Recorder(load_station(st.home), store, load_profile("synthetic"), clock,
                   RecorderSettings(site="HN-CA-01", room="P101"))
    link = ServerLink(f"http://127.0.0.1:{hung.getsockname()[1]}", "st-live-01", rec.station.key, clock,
                      timeout_s=60)
    sender = EventSender(tmp_path / "events.db", link, clock, site="HN-CA-01", room="P101")
    rec.event_sink = sender.sink
    try:
        sid = rec.start(CASE, None)
        sender.watching = sid
        sender.start()
        result: dict[str, str] = {}
        worker = threading.Thread(target=lambda: result.update(reason=rec.record(sid, None)))
        worker.start()
        wait_for(lambda: len(rec.journal.segments(sid)) >= 1, 30)
        wait_for(lambda: len(held) >= 1, 10)  # the sender is stuck in its request to the hung server
        rec.mark("break")
        rec.watched_by({"5": "N. V. A., Procuracy of Hà Nội"})
        before = len(rec.journal.segments(sid))
        time.sleep(8.0)
        sealed = len(rec.journal.segments(sid))
        # Each segment reaches the store as soon as it is sealed: at most the one being uploaded is missing.
        in_store = sum(1 for n in store.list(f"HN-CA-01/P101/{sid}/seg/") if n.endswith(".bin"))
        rec.stop_requested.set()
        worker.join(timeout=60)
        manifest = rec.close(sid, result.get("reason", "stopped"))
        assert rec.finish_uploads() == 0
    finally:
        stop.set()
        acceptor.join(timeout=5)
        for c in held:
            c.close()
        hung.close()
    assert sender.pending() > 0  # nothing reached the server, nothing waited for it
    sender.close(timeout_s=1)
    assert sealed - before >= 8.0 / SEGMENT_S - 1, (before, sealed)  # capture kept its pace
    assert in_store >= sealed - 1, (in_store, sealed)
    kinds = [(e["kind"], e["detail"]) for e in manifest["events"]]
    assert ("marker", "break") in kinds
    assert ("witness_start", "5 N. V. A., Procuracy of Hà Nội") in kinds
    assert ("witness_stop", "5 N. V. A., Procuracy of Hà Nội") in kinds
