"""A whole session as the investigator runs it, in headless Chromium against the real
`irms-agent screen`, in Vietnamese and in English: case form, pre-flight (camera still, sound test),
recording, pause with a reason and its duration, resume, end, annex. Every page is looked at on a
1366x768 screen and in a 390 px wide window (nothing wider than the window, the timer on screen, no
English message id left in Vietnamese), screenshots in test-artifacts/. The session then verifies
with irms-verify and carries exactly one pause interruption."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recorder import screen as screen_module
from tests.plugins.base import date_server
from tests.plugins.devices import unplugged_camera_kit
from tests.plugins.pages import untranslated
from tests.plugins.processes import stop_process
from tests.plugins.recording import BIN, Station, run_cli

SCREEN_PIN = "2027-0115"
SCREEN_PO = Path(screen_module.__file__).parent / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
SIZES = ((1366, 768), (390, 844))
ENGLISH = re.compile(r"\b(the|and|is|was|of|cannot|not|requested|server)\b", re.I)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAUSE = "Tạm dừng để luật sư trao đổi với bị can"
RESUME = "Luật sư đã trao đổi xong, tiếp tục hỏi cung"


@dataclass
class ScreenServer:
    url: str
    store: Path
    log: Path


@pytest.fixture
def time_reference() -> Iterator[str]:
    """An HTTP server whose Date header is the reference time (the enrolled server, in production)."""
    with date_server() as url:
        yield url


@contextmanager
def serve_screen(station: Station, tmp_path: Path, time_reference: str, *extra: str) -> Iterator[ScreenServer]:
    """`irms-agent screen` on a free loopback port, stopped (SIGTERM, by pid) afterwards."""
    store = tmp_path / "store"
    log = tmp_path / "screen.log"
    run_cli("irms-agent", "screen-pin", "--pin-stdin", env=station.env(), input=SCREEN_PIN + "\n")
    with log.open("wb") as err:
        proc = subprocess.Popen([str(BIN / "irms-agent"), "screen", "--store", str(store), "--site", "HN-CA-01",
                                 "--room", "P101", "--port", "0", "--clock-ref", time_reference, *extra],
                                env=station.env(), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, log.read_text()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)  # type: ignore[union-attr]
        yield ScreenServer(url, store, log)
    finally:
        stop_process(proc)


@pytest.fixture
def screen_server(station: Station, tmp_path: Path, time_reference: str) -> Iterator[ScreenServer]:
    with serve_screen(station, tmp_path, time_reference) as server:
        yield server


IT_DESK = "Đội kỹ thuật PC04, 024 3826 0000"


@pytest.fixture
def unplugged_camera_screen(station: Station, tmp_path: Path, time_reference: str) -> Iterator[ScreenServer]:
    """The screen of a room whose RTSP camera does not answer (nothing listens on its port)."""
    kit = unplugged_camera_kit(tmp_path)
    (station.home / "station.toml").write_text(f'support_contact = "{IT_DESK}"\n', encoding="utf-8")
    with serve_screen(station, tmp_path, time_reference, "--kit", str(kit)) as server:
        yield server


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_a_blocked_preflight_says_what_to_do_and_whom_to_call(chromium_page: Any,
                                                               unplugged_camera_screen: ScreenServer,
                                                               artifacts_dir: Path, lang: str) -> None:
    """The camera is unplugged: the page says so in words, with the next action and the IT desk's number; the raw
    detail (check name, URL, the library's error) only when "details" is opened."""
    page = chromium_page
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    page.goto(unplugged_camera_screen.url + "/")
    if lang == "en":
        page.click("a[hreflang=en]")
    page.fill("#pin", SCREEN_PIN)
    page.click("#log-in")
    page.fill("#case_number", "34/2026/HS")
    page.fill("#suspect", "Lý Thị Mai")
    page.fill("#interrogators", "Ngô Bảo Châu")
    page.fill("#legal_basis", "Điều 183 Bộ luật Tố tụng hình sự 2015")
    page.click("#check")
    assert page.locator("#preflight-result").get_attribute("data-verdict") == "block"
    assert page.locator("#start").count() == 0
    camera = page.locator('li.check[data-check="camera.frames"]')
    shown = camera.inner_text()
    words = (("Camera không gửi hình.", "Kiểm tra camera đã bật nguồn và dây cáp đã cắm chặt.",
              f"Nếu vẫn không đạt, gọi bộ phận kỹ thuật: {IT_DESK}.") if lang == "vi" else
             ("The camera sends no picture.", "Check that the camera is switched on and its cable is plugged in.",
              f"If it does not pass, call the IT desk: {IT_DESK}."))
    for w in words:
        assert w in shown, (w, shown)
    assert page.locator('.no-picture[data-device="camera wide"]').inner_text() == (
        "Không có hình từ camera này." if lang == "vi" else "No picture from this camera.")
    body = page.inner_text("body")
    for raw in ("camera.frames", "rtsp://", "cannot open"):
        assert raw not in body, raw
    look(page, artifacts_dir, "preflight-blocked", lang)
    camera.locator("summary").click()
    detail = camera.locator("details .mono").inner_text()
    assert "camera.frames" in detail and "cannot open rtsp://127.0.0.1" in detail
    page.screenshot(path=str(artifacts_dir / f"station-screen-preflight-blocked-details-{lang}-1366.png"),
                    full_page=True)


def look(page: Any, artifacts: Path, name: str, lang: str) -> None:
    """The page at both sizes: nothing wider than the window, the timer inside it, a screenshot of each; in
    Vietnamese no English message id in what it shows."""
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)
        overflow = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert overflow[0] <= overflow[1], (name, width, overflow)
        if page.locator("#elapsed").count():
            box = page.locator("#elapsed").bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (name, width, box)
        page.screenshot(path=str(artifacts / f"station-screen-{name}-{lang}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    if lang == "vi":
        shown = page.inner_text("body")
        assert untranslated(shown, SCREEN_PO) == [], (name, untranslated(shown, SCREEN_PO))
        assert not ENGLISH.search(shown), (name, ENGLISH.findall(shown))  # raw English only behind "details"


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_investigator_runs_a_whole_session(chromium_page: Any, screen_server: ScreenServer, station: Station,
                                           artifacts_dir: Path, lang: str) -> None:
    page = chromium_page
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))  # a script that fails to parse fails the test
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    page.goto(screen_server.url + "/")
    if lang == "en":
        page.click("a[hreflang=en]")
    look(page, artifacts_dir, "login", lang)
    page.fill("#pin", SCREEN_PIN)  # nothing before the station PIN
    page.click("#log-in")
    look(page, artifacts_dir, "form", lang)
    page.fill("#case_number", "33/2026/HS")
    page.fill("#suspect", "Trịnh Văn Khải")
    page.fill("#interrogators", "Ngô Bảo Châu\nĐặng Thuỳ Linh")
    page.fill("#legal_basis", "Điều 183 Bộ luật Tố tụng hình sự 2015")
    page.fill("#expected_minutes", "30")
    page.click("#check")

    result = page.locator("#preflight-result")
    assert result.get_attribute("data-verdict") == "ok", page.locator("#checks").inner_text()
    assert page.locator('li.check[data-verdict="block"]').count() == 0
    # The camera view and the sound test the pre-flight took.
    assert page.evaluate("() => document.querySelector('img.still').naturalWidth") == 640
    level = float(page.locator("meter.level").get_attribute("value") or "nan")
    assert -30 < level < -10
    assert page.locator("li.check details").first.is_visible()
    assert not page.locator("li.check details .mono").first.is_visible()  # raw detail only when opened
    page.locator("li.check details summary").first.click()
    assert page.locator("li.check details .mono").first.is_visible()
    look(page, artifacts_dir, "preflight", lang)
    page.click("#start")

    state = page.locator("#state")
    state.filter(has_text="ĐANG GHI / RECORDING").wait_for()
    sid = page.locator("#session").get_attribute("data-sid")
    assert sid
    # The live picture and the audio level arrive while recording.
    page.wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=30_000)
    page.wait_for_function("document.getElementById('meter').getAttribute('aria-valuenow') !== null",
                           timeout=30_000)
    level = float(page.locator("#meter").get_attribute("aria-valuenow") or "nan")
    assert -30 < level < -10
    page.wait_for_function("document.getElementById('elapsed').textContent >= '00:00:03'", timeout=30_000)
    look(page, artifacts_dir, "recording", lang)

    # Pause without a reason is refused; with a reason it pauses.
    page.click("#pause")  # the browser's `required` keeps an empty reason from being sent
    assert page.locator("#pause-reason-input").evaluate("e => e.validity.valueMissing")
    page.fill("#pause-reason-input", PAUSE)
    page.click("#pause")
    state.filter(has_text="TẠM DỪNG / PAUSED").wait_for()
    assert page.locator("#pause-reason").inner_text() == PAUSE
    # How long the pause has lasted, counting.
    page.wait_for_function("document.getElementById('paused-for').textContent >= '0:02'", timeout=10_000)
    assert re.fullmatch(r"0:0[2-9]", page.locator("#paused-for").inner_text())
    look(page, artifacts_dir, "paused", lang)
    page.fill("#resume-reason-input", RESUME)
    page.click("#resume")
    state.filter(has_text="ĐANG GHI / RECORDING").wait_for()
    segments = int(page.locator("#segments").inner_text())
    page.wait_for_function(f"Number(document.getElementById('segments').textContent) > {segments}",
                           timeout=30_000)
    # End asks first (no script needed): "No" keeps recording, "Yes" ends.
    page.click("#end")
    page.locator("#end-confirmation").wait_for()
    assert "ĐANG GHI / RECORDING" in state.inner_text()
    look(page, artifacts_dir, "end-confirmation", lang)
    page.click("#end-cancel")
    state.filter(has_text="ĐANG GHI / RECORDING").wait_for()
    assert page.locator("#end-confirmation").count() == 0
    page.click("#end")
    page.click("#end-confirm")
    state.filter(has_text="ĐÃ KẾT THÚC").wait_for(timeout=60_000)
    assert errors == [], errors
    assert page.locator("#manifest-sha256").inner_text()
    # Plainly: everything is uploaded (the local store is there), and the annex is a button.
    page.locator('#uploads[data-uploaded="all"]').wait_for(timeout=60_000)
    assert page.locator("#uploads").inner_text().strip().startswith(
        "✔ Đã tải lên toàn bộ" if lang == "vi" else "✔ Everything is uploaded")
    assert page.locator("a.button#annex").is_visible()
    look(page, artifacts_dir, "ended", lang)

    # The annex opens from the screen.
    href = page.locator("#annex").get_attribute("href")
    annex = page.request.get(screen_server.url + href)
    assert annex.status == 200 and annex.headers["content-type"] == "application/pdf"
    assert annex.body()[:5] == b"%PDF-"

    # The session verifies from the store, with one pause interruption carrying its reason.
    deadline = time.monotonic() + 60
    while True:
        res = station.verify("session", sid, "--store", str(screen_server.store), "--json")
        if res.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the last uploads may still be on their way
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    pauses = [i for i in report["interruptions"] if i["cause"] == "pause"]
    assert [i["reason"] for i in pauses] == [PAUSE]
    # The generated kit follows the encoder's pace: on a machine loaded by the rest of the suite the encoder
    # can fall behind real time, and the recorder then declares that time (never leaves it unexplained).
    # Any other interruption must be that declaration.
    others = [i for i in report["interruptions"] if i["cause"] != "pause"]
    assert all(i["cause"] == "encoder_stall" and "overloaded" in i["reason"] for i in others), others
