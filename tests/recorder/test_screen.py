"""The station screen (R01-R04, R22): the station PIN before anything, required case fields, CSRF,
foreign host names, the pre-flight gate with every blocking cause and the store-unreachable warning,
driven through Flask's test client."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from recorder import screen as screen_module
from recorder.journal import Journal
from recorder.preflight import read_refusals
from recorder.screen import ScreenSettings, create_screen_app
from recorder.screen_cli import recorder_factory
from recorder.screen_login import ScreenLogins, _hasher
from tests.plugins.base import date_server
from tests.plugins.devices import CameraPeer, MicPeer, camera_and_mic_kit, unplugged_camera_kit
from tests.plugins.pages import untranslated, visible_text
from tests.plugins.recording import Station

SCREEN_PO = Path(screen_module.__file__).parent / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
IT_DESK = "Đội kỹ thuật PC04, 024 3826 0000"
ENGLISH = re.compile(r"\b(the|and|is|was|of|cannot|not|requested|server)\b", re.I)

SITE, ROOM = "HN-CA-01", "P101"
PIN = "2468-1357"
PIN_HASH = _hasher.hash(PIN)
FORM = {
    "case_number": "15/2026/HS",
    "suspect": "Hoàng Văn Đức",
    "interrogators": "Nguyễn Thị Lan\nPhạm Quốc Huy",
    "legal_basis": "Điều 183 Bộ luật Tố tụng hình sự 2015",
    "expected_minutes": "60",
}


@pytest.fixture
def home(station: Station, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IRMS_HOME", str(station.home))
    monkeypatch.setenv("IRMS_TRUST", str(station.trust))
    monkeypatch.setenv("IRMS_DRAIN_TIMEOUT_S", "2")
    return station.home


def make_app(home: Path, store: str, kit: str = "synthetic", **settings: Any) -> Flask:
    app = create_screen_app(recorder_factory(home, store, SITE, ROOM, kit),
                            ScreenSettings(site=SITE, room=ROOM, pin_hash=PIN_HASH, **settings), home=home)
    app.testing = True
    return app


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps made by a test; any session still running is ended afterwards."""
    made: list[Flask] = []
    yield made
    for app in made:
        app.extensions["irms_screen"].stop_all()


def log_in(client: FlaskClient, pin: str = PIN) -> int:
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post("/login", data={"pin": pin, "csrf_token": token}).status_code


def client_for(apps: list[Flask], home: Path, store: str, **kw: Any) -> FlaskClient:
    """A client of a new screen app, logged in with the station PIN."""
    app = make_app(home, store, **kw)
    apps.append(app)
    client = app.test_client()
    assert log_in(client) == 303
    return client


def csrf(client: FlaskClient) -> str:
    assert client.get("/").status_code == 200
    with client.session_transaction() as s:
        return str(s["csrf"])


def sessions_in_journal(home: Path) -> int:
    if not (home / "journal.db").exists():
        return 0
    j = Journal(home / "journal.db")
    try:
        return int(j.db.execute("SELECT count(*) FROM sessions").fetchone()[0])
    finally:
        j.close()


def test_every_case_field_is_required(home: Path, tmp_path: Path, apps: list[Flask]) -> None:
    client = client_for(apps, home, str(tmp_path / "store"))
    token = csrf(client)
    resp = client.post("/preflight", data={"csrf_token": token, "case_number": "  ", "expected_minutes": "60"})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    for message in ("Số vụ án / hồ sơ là bắt buộc.", "Người bị hỏi cung là bắt buộc.",
                    "Điều tra viên là bắt buộc.", "Căn cứ pháp lý là bắt buộc."):
        assert message in page
    # One missing field at a time, in English, and an impossible expected length.
    client.set_cookie("irms_lang", "en")
    for missing in ("case_number", "suspect", "interrogators", "legal_basis"):
        resp = client.post("/preflight", data={**FORM, missing: "", "csrf_token": token})
        assert resp.status_code == 400
        page = resp.get_data(as_text=True)
        assert f'id="{missing}-error"' in page and page.count('class="field-error"') == 1, missing
        assert "is required." in page
    resp = client.post("/preflight", data={**FORM, "expected_minutes": "0", "csrf_token": token})
    assert resp.status_code == 400 and "from 1 to 720" in resp.get_data(as_text=True)
    # Input is escaped, not interpreted.
    resp = client.post("/preflight", data={**FORM, "suspect": "<script>x()</script>", "case_number": "",
                                           "csrf_token": token})
    assert "<script>x()" not in resp.get_data(as_text=True)
    assert sessions_in_journal(home) == 0


def test_posts_without_a_valid_csrf_token_are_refused(home: Path, tmp_path: Path, apps: list[Flask]) -> None:
    client = client_for(apps, home, str(tmp_path / "store"))
    csrf(client)
    assert client.post("/preflight", data=FORM).status_code == 400
    resp = client.post("/preflight", data={**FORM, "csrf_token": "forged"})
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    assert client.post("/start", data={"token": "x"}).status_code == 400
    assert client.post("/session/00000000-0000-4000-8000-000000000000/end").status_code == 400
    # A token from another browser session does not count either.
    other = client_for(apps, home, str(tmp_path / "store"))
    assert other.post("/preflight", data={**FORM, "csrf_token": csrf(client)}).status_code == 400
    assert sessions_in_journal(home) == 0
    assert read_refusals(home) == []


def test_nothing_without_the_station_pin(home: Path, tmp_path: Path, apps: list[Flask]) -> None:
    app = make_app(home, str(tmp_path / "store"))
    apps.append(app)
    client = app.test_client()
    resp = client.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    for path in ("/session/00000000-0000-4000-8000-000000000000/status.json",
                 "/session/00000000-0000-4000-8000-000000000000/preview.jpg"):
        assert client.get(path).status_code == 401, path
    assert client.post("/preflight", data=FORM).status_code == 401
    # wrong PINs: refused, then throttled (even the right one must wait), the wait doubling
    logins: ScreenLogins = app.extensions["irms_screen_logins"]
    t = [1000.0]
    logins.monotonic = lambda: t[0]
    for _ in range(5):
        assert log_in(client, "000000") == 401
    resp_page = client.get("/login").get_data(as_text=True)
    token = resp_page.split('name="csrf_token" value="')[1].split('"')[0]
    resp = client.post("/login", data={"pin": PIN, "csrf_token": token})
    assert resp.status_code == 429 and "thử lại sau 30 giây" in resp.get_data(as_text=True)
    t[0] += 31
    assert log_in(client, "000000") == 401
    t[0] += 31
    assert log_in(client) == 429
    t[0] += 30
    assert log_in(client) == 303
    assert client.get("/").status_code == 200
    # logging out ends it
    page = client.get("/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 302


def test_a_foreign_host_header_is_refused(home: Path, tmp_path: Path, apps: list[Flask]) -> None:
    """DNS rebinding: a page elsewhere points a name of its own at the station; the screen answers only its own."""
    client = client_for(apps, home, str(tmp_path / "store"))
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example", "10.0.0.5:8765"):
        resp = client.get("/", headers={"Host": host})
        assert resp.status_code == 403 and "không phục vụ tên máy này" in resp.get_data(as_text=True), host
        assert client.post("/preflight", data=FORM, headers={"Host": host}).status_code == 403
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST"):
        # its own names are served (the cookie is the test client's "localhost" one: elsewhere, the login page)
        assert client.get("/", headers={"Host": host}).status_code in (200, 302), host
        assert client.get("/login", headers={"Host": host}).status_code == 200, host


def assert_blocked(client: FlaskClient, home: Path, check: str, words: str) -> None:
    resp = client.post("/preflight", data={**FORM, "csrf_token": csrf(client)})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 409, page
    assert "KHÔNG ĐƯỢC BẮT ĐẦU GHI" in page
    assert 'id="start"' not in page
    assert f'data-check="{check}" data-verdict="block"' in page
    assert words in page
    refusals = read_refusals(home)
    assert refusals and refusals[-1]["case_number"] == FORM["case_number"]
    assert any(r["name"] == check and words in r["message"] for r in refusals[-1]["reasons"])
    assert sessions_in_journal(home) == 0
    # Without a passed pre-flight there is nothing to start.
    resp = client.post("/start", data={"csrf_token": csrf(client), "token": "guess"})
    assert resp.status_code == 400 and sessions_in_journal(home) == 0


def test_too_little_disk_blocks_the_start(home: Path, tmp_path: Path, apps: list[Flask],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRMS_MIN_FREE_BYTES", str(2**60))
    client = client_for(apps, home, str(tmp_path / "store"))
    assert_blocked(client, home, "disk.free", "GiB free, below")


@pytest.fixture
def skewed_time_server() -> Iterator[str]:
    """An HTTP server whose Date header is an hour behind the station."""
    with date_server(-3600) as url:
        yield url


def test_clock_too_far_off_blocks_the_start(home: Path, tmp_path: Path, apps: list[Flask],
                                            skewed_time_server: str) -> None:
    client = client_for(apps, home, str(tmp_path / "store"), clock_reference=skewed_time_server)
    assert_blocked(client, home, "clock.offset", "ahead of the reference")


def test_a_failing_required_device_blocks_the_start(home: Path, tmp_path: Path, apps: list[Flask]) -> None:
    kit = unplugged_camera_kit(tmp_path)
    client = client_for(apps, home, str(tmp_path / "store"), kit=str(kit), support_contact=IT_DESK)
    assert_blocked(client, home, "camera.frames", "cannot open rtsp://127.0.0.1")
    # What the investigator reads: what is wrong, what to do, whom to call; the raw detail only behind "details".
    page = client.post("/preflight", data={**FORM, "csrf_token": csrf(client)}).get_data(as_text=True)
    shown = visible_text(page)
    for raw in ("camera.frames", "cannot open", "rtsp://", "Errno", "block"):
        assert raw not in shown, raw
    for words in ("KHÔNG ĐƯỢC BẮT ĐẦU GHI.", "Camera không gửi hình.", "Kiểm tra camera đã bật nguồn",
                  "Sau đó bấm “Kiểm tra lại”.", f"Nếu vẫn không đạt, gọi bộ phận kỹ thuật: {IT_DESK}."):
        assert words in shown, words
    assert "<details><summary>Chi tiết kỹ thuật</summary>" in page and "cannot open rtsp://127.0.0.1" in page
    assert untranslated(shown, SCREEN_PO) == []
    client.set_cookie("irms_lang", "en")
    shown = visible_text(client.post("/preflight", data={**FORM, "csrf_token": csrf(client)}).get_data(as_text=True))
    assert "The camera sends no picture." in shown and f"If it does not pass, call the IT desk: {IT_DESK}." in shown
    assert "camera.frames" not in shown


def wait_state(client: FlaskClient, sid: str, state: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = dict(json.loads(client.get(f"/session/{sid}/status.json").get_data()))
        if status["state"] == state:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


@pytest.mark.slow
def test_unreachable_store_warns_and_still_records(home: Path, tmp_path: Path, apps: list[Flask]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = client_for(apps, home, f"s3://key:secret-key-123@127.0.0.1:{port}/evidence")
    token = csrf(client)
    resp = client.post("/preflight", data={**FORM, "csrf_token": token})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200, page
    assert 'data-check="store.reachable" data-verdict="warning"' in page
    assert "segments will queue on this station" in page
    assert 'data-verdict="block"' not in page
    start_token = page.split('name="token" value="')[1].split('"')[0]
    resp = client.post("/start", data={"csrf_token": token, "token": start_token})
    assert resp.status_code == 303
    sid = resp.headers["Location"].rstrip("/").split("/")[-1]
    page = client.get(f"/session/{sid}").get_data(as_text=True)
    assert "ĐANG GHI / RECORDING" in page and "store unreachable" in page  # the raw detail, behind "details"
    shown = visible_text(page)
    assert "Hiện không kết nối được kho lưu trữ trung tâm." in shown and "Vẫn có thể ghi" in shown
    assert "unreachable" not in shown and "Errno" not in shown and "store.reachable" not in shown
    # A second local client without the PIN sees nothing of it and cannot pause or end it.
    intruder = apps[-1].test_client()
    assert intruder.get(f"/session/{sid}").status_code == 302
    for path in ("status.json", "preview.jpg", "level.json", "annex.pdf"):
        resp = intruder.get(f"/session/{sid}/{path}")
        assert resp.status_code == 401 and FORM["suspect"] not in resp.get_data(as_text=True), path
    for action in ("pause", "end"):
        assert intruder.post(f"/session/{sid}/{action}", data={"reason": "x"}).status_code == 401
    # The same pre-flight cannot start a second session.
    assert client.post("/start", data={"csrf_token": token, "token": start_token}).status_code == 400
    deadline = time.monotonic() + 30
    while json.loads(client.get(f"/session/{sid}/status.json").get_data())["segments"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.25)
    # A pause needs a reason.
    resp = client.post(f"/session/{sid}/pause", data={"csrf_token": token, "reason": "  "})
    assert resp.status_code == 303 and "error=reason_required" in resp.headers["Location"]
    assert wait_state(client, sid, "recording", 1)["state"] == "recording"
    # The live picture and level, as the page polls them (just after a cut there may be none yet).
    deadline = time.monotonic() + 20
    while (jpeg := client.get(f"/session/{sid}/preview.jpg")).status_code == 204:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert jpeg.status_code == 200 and jpeg.data[:2] == b"\xff\xd8"
    while (level := json.loads(client.get(f"/session/{sid}/level.json").get_data()))["dbfs"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert -30 < level["dbfs"] < -10  # the synthetic kit's 1 kHz tone, about -21 dBFS RMS
    # End asks first: without "yes" the session goes on and the page asks.
    asked = client.post(f"/session/{sid}/end", data={"csrf_token": token})
    assert asked.status_code == 303 and asked.headers["Location"].endswith("?confirm=end")
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert 'id="end-confirmation"' in page and 'name="confirm" value="yes"' in page and "onsubmit" not in page
    assert wait_state(client, sid, "recording", 1)["state"] == "recording"
    assert client.post(f"/session/{sid}/end", data={"csrf_token": token, "confirm": "yes"}).status_code == 303
    status = wait_state(client, sid, "ended")
    assert status["end_reason"] == "stopped"
    assert status["pending_uploads"] > 0  # queued on the station, not lost
    # The end page says so plainly: how many pieces wait, that they are kept, whom to tell.
    while not status["uploads_settled"]:
        status = wait_state(client, sid, "ended")
    shown = visible_text(client.get(f"/session/{sid}").get_data(as_text=True))
    assert f"Còn {status['pending_uploads']} phần của bản ghi đang chờ trên trạm" in shown
    assert "Báo bộ phận kỹ thuật của đơn vị." in shown and "Đã tải lên toàn bộ" not in shown
    pdf = client.get(f"/session/{sid}/annex.pdf")
    assert pdf.status_code == 200 and pdf.data[:5] == b"%PDF-"
    assert read_refusals(home) == []


def test_the_preflight_checks_a_camera_with_the_credentials_the_recording_uses(
        home: Path, tmp_path: Path, apps: list[Flask], camera_peer: CameraPeer, mic_peer: MicPeer) -> None:
    """A kit whose camera URL needs a user and password (station.toml): the screen's pre-flight fills them
    in as `irms-agent record` does, instead of blocking with "device URL template needs 'user'" (issue 14,
    bug 3)."""
    host, path = camera_peer.url.removeprefix("rtsp://").split("/", 1)
    (home / "station.toml").write_text(f'camera_host = "{host}"\ncamera_user = "investigator"\n'
                                       'camera_password = "pw-for-the-camera-9"\n')
    kit = camera_and_mic_kit(tmp_path, camera_peer, mic_peer, device=f"rtsp://{{user}}:{{password}}@{{host}}/{path}")
    client = client_for(apps, home, str(tmp_path / "store"), kit=str(kit))
    page = client.post("/preflight", data={**FORM, "csrf_token": csrf(client)}).get_data(as_text=True)
    assert "needs 'user'" not in page and "pw-for-the-camera-9" not in page
    assert 'data-check="camera.wide" data-verdict="ok"' in page or \
        re.search(r'data-check="camera[^"]*" data-verdict="ok"', page), page
    # The camera view: a still of what the RTSP camera sent at the check; the sound test: the microphone's level.
    assert '<img class="still" src="data:image/jpeg;base64,' in page and 'data-device="camera wide"' in page
    assert re.search(r'class="sound-test" data-device="microphone [^"]+"', page) and 'data-dbfs="' in page


@pytest.mark.slow
def test_markers_and_viewers_go_into_the_signed_manifest(home: Path, tmp_path: Path, apps: list[Flask]) -> None:
    """The marker button (with a label from the unit's list, or none) and the server's live viewers as the
    event sender hands them over: shown on the screen, and events in the signed manifest."""
    client = client_for(apps, home, str(tmp_path / "store"), marker_labels=("rights read", "break"))
    token = csrf(client)
    page = client.post("/preflight", data={**FORM, "csrf_token": token}).get_data(as_text=True)
    start_token = page.split('name="token" value="')[1].split('"')[0]
    sid = client.post("/start", data={"csrf_token": token, "token": start_token}).headers["Location"].split("/")[-1]
    page = client.get(f"/session/{sid}").get_data(as_text=True)
    assert '<option value="rights read">' in page and 'id="watched" role="status" hidden' in page
    assert client.post(f"/session/{sid}/marker", data={"csrf_token": token, "label": "rights read"}).status_code == 303
    assert client.post(f"/session/{sid}/marker", data={"csrf_token": token}).status_code == 303
    bad = client.post(f"/session/{sid}/marker", data={"csrf_token": token, "label": "anything else"})
    assert "error=bad_marker" in bad.headers["Location"]
    screen = apps[-1].extensions["irms_screen"]
    screen._on_watchers({sid: {"7": "N. V. A., Procuracy of Hà Nội"}, "other-session": {"8": "X, Y"}})
    status = wait_state(client, sid, "recording", 1)
    assert status["watchers"] == ["N. V. A., Procuracy of Hà Nội"]
    assert "N. V. A., Procuracy of Hà Nội" in client.get(f"/session/{sid}").get_data(as_text=True)
    deadline = time.monotonic() + 30
    while len(wait_state(client, sid, "recording", 1)["markers"]) < 2:  # written by the recording thread
        assert time.monotonic() < deadline
        time.sleep(0.2)
    screen._on_watchers({sid: {"7": "N. V. A., Procuracy of Hà Nội", "9": "T. T. B., Procuracy of Hà Nội"}})
    screen._on_watchers({sid: {"9": "T. T. B., Procuracy of Hà Nội"}})
    time.sleep(1)
    assert client.post(f"/session/{sid}/end", data={"csrf_token": token, "confirm": "yes"}).status_code == 303
    wait_state(client, sid, "ended")
    j = Journal(home / "journal.db")
    try:
        manifest = json.loads(j.manifest(sid) or "{}")
    finally:
        j.close()
    events = [(e["kind"], e["detail"]) for e in manifest["events"]
              if e["kind"] in ("marker", "witness_start", "witness_stop")]
    assert events == [("marker", "rights read"), ("marker", ""),
                      ("witness_start", "7 N. V. A., Procuracy of Hà Nội"),
                      ("witness_start", "9 T. T. B., Procuracy of Hà Nội"),
                      ("witness_stop", "7 N. V. A., Procuracy of Hà Nội"),
                      ("witness_stop", "9 T. T. B., Procuracy of Hà Nội")], events


@pytest.fixture
def reference_time() -> Iterator[str]:
    """An HTTP server whose Date header is right: the clock check passes."""
    with date_server() as url:
        yield url


def page_ok(client: FlaskClient, path: str, lang: str, method: str = "GET", **kw: Any) -> str:
    """A page of the screen: in Vietnamese, no English message id left in what it shows, none asked for."""
    resp = client.open(path, method=method, **kw)
    page = resp.get_data(as_text=True)
    if lang == "vi":
        shown = visible_text(page)
        assert untranslated(shown, SCREEN_PO) == [], (path, untranslated(shown, SCREEN_PO))
        assert screen_module.MISSES.seen == set(), (path, screen_module.MISSES.seen)
        # Nor English that is no message id (a library's stock text): the raw detail only behind "details".
        assert not ENGLISH.search(shown), (path, ENGLISH.findall(shown))
    return page


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_screen_page_in_the_chosen_language(home: Path, tmp_path: Path, apps: list[Flask], lang: str,
                                                 reference_time: str) -> None:
    """Walk every page of the screen (login, form and its errors, pre-flight refused and passed with the camera's
    still and the sound test, recording, paused with its duration, ended): in Vietnamese no page shows an
    English message id, and the catalogue was never asked for one it lacks."""
    screen_module.MISSES.seen.clear()
    app = make_app(home, str(tmp_path / "store"), support_contact=IT_DESK, clock_reference=reference_time)
    apps.append(app)
    client = app.test_client()
    client.set_cookie("irms_lang", lang)
    page = page_ok(client, "/login", lang)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    page = page_ok(client, "/login", lang, "POST", data={"pin": "000000", "csrf_token": token})
    assert ("Sai mã PIN." if lang == "vi" else "Wrong PIN.") in page
    assert log_in(client) == 303
    token = csrf(client)
    page = page_ok(client, "/", lang)
    assert ("Phiên hỏi cung mới" if lang == "vi" else "New interrogation session") in page
    page = page_ok(client, "/preflight", lang, "POST", data={"csrf_token": token, "expected_minutes": "x"})
    assert ("là bắt buộc." if lang == "vi" else "is required.") in page
    page = page_ok(client, "/preflight", lang, "POST", data={**FORM, "expected_minutes": "720", "csrf_token": token})
    page = page_ok(client, "/session/00000000-0000-4000-8000-000000000000", lang)  # 404, the error page
    assert ("Không tìm thấy: phiên ghi có thể đã kết thúc" if lang == "vi" else "Not found: the session") in \
        visible_text(page)
    assert "The requested URL was not found" in page  # werkzeug's own words, behind "details"
    page = page_ok(client, "/preflight", lang, "POST", data={**FORM, "csrf_token": token})
    shown = visible_text(page)
    assert ("Mọi thiết bị hoạt động tốt" if lang == "vi" else "Everything works") in shown
    # The camera view: a real JPEG still of the generated picture; the sound test: the 1 kHz tone's level.
    still = page.split('class="still" src="data:image/jpeg;base64,')[1].split('"')[0]
    import base64

    import cv2
    import numpy as np
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(still), np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[1] == 640 and float(picture.std()) > 20
    level = float(page.split('data-dbfs="')[1].split('"')[0])
    assert -30 < level < -10, level
    assert ("Có âm thanh." if lang == "vi" else "Sound heard.") in shown
    start_token = page.split('name="token" value="')[1].split('"')[0]
    sid = client.post("/start", data={"csrf_token": token, "token": start_token}).headers["Location"].split("/")[-1]
    page_ok(client, f"/session/{sid}", lang)
    page_ok(client, f"/session/{sid}?error=reason_required", lang)
    page_ok(client, f"/session/{sid}?confirm=end", lang)
    client.post(f"/session/{sid}/pause", data={"csrf_token": token, "reason": "Nghỉ giải lao"})
    status = wait_state(client, sid, "paused", 10)
    assert status["paused_since_us"] and status["paused_since_us"] >= status["started_us"]
    page = page_ok(client, f"/session/{sid}", lang)
    assert 'id="paused-for"' in page and f'data-paused-since-us="{status["paused_since_us"]}"' in page
    assert ("Đã tạm dừng" if lang == "vi" else "Paused for") in visible_text(page)
    client.post(f"/session/{sid}/resume", data={"csrf_token": token, "reason": "Tiếp tục"})
    assert wait_state(client, sid, "recording", 10)["paused_since_us"] is None
    client.post(f"/session/{sid}/end", data={"csrf_token": token, "confirm": "yes"})
    status = wait_state(client, sid, "ended")
    deadline = time.monotonic() + 60
    while not status["uploads_settled"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
        status = wait_state(client, sid, "ended")
    page = page_ok(client, f"/session/{sid}", lang)
    assert status["pending_uploads"] == 0
    assert ("Đã tải lên toàn bộ: bản ghi đã được lưu an toàn trong kho trung tâm." if lang == "vi" else
            "Everything is uploaded: the recording is safe in the central store.") in visible_text(page)
    assert re.search(r'<a class="button" id="annex" href="/session/[0-9a-f-]+/annex\.pdf"', page)
    page_ok(client, "/", lang)
