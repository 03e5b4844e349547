"""A whole session as the investigator runs it, in headless Chromium against the real
`irms-agent screen`: case form, pre-flight, recording, pause with a reason, resume, end, annex.
The session then verifies with irms-verify and carries exactly one pause interruption."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.base import date_server
from tests.plugins.processes import stop_process
from tests.plugins.recording import BIN, Station, run_cli

SCREEN_PIN = "2027-0115"

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


@pytest.fixture
def screen_server(station: Station, tmp_path: Path, time_reference: str) -> Iterator[ScreenServer]:
    """`irms-agent screen` on a free loopback port, stopped (SIGTERM, by pid) afterwards."""
    store = tmp_path / "store"
    log = tmp_path / "screen.log"
    run_cli("irms-agent", "screen-pin", "--pin-stdin", env=station.env(), input=SCREEN_PIN + "\n")
    with log.open("wb") as err:
        proc = subprocess.Popen([str(BIN / "irms-agent"), "screen", "--store", str(store), "--site", "HN-CA-01",
                                 "--room", "P101", "--port", "0",
                                 "--clock-ref", time_reference], env=station.env(), stdout=subprocess.PIPE,
                                stderr=err, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, log.read_text()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)  # type: ignore[union-attr]
        yield ScreenServer(url, store, log)
    finally:
        stop_process(proc)


def test_investigator_runs_a_whole_session(chromium_page: Any, screen_server: ScreenServer, station: Station,
                                           artifacts_dir: Path) -> None:
    page = chromium_page
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))  # a script that fails to parse fails the test
    page.goto(screen_server.url + "/")
    page.fill("#pin", SCREEN_PIN)  # nothing before the station PIN
    page.click("#log-in")
    page.fill("#case_number", "33/2026/HS")
    page.fill("#suspect", "Trịnh Văn Khải")
    page.fill("#interrogators", "Ngô Bảo Châu\nĐặng Thuỳ Linh")
    page.fill("#legal_basis", "Điều 183 Bộ luật Tố tụng hình sự 2015")
    page.fill("#expected_minutes", "30")
    page.click("#check")

    result = page.locator("#preflight-result")
    assert result.get_attribute("data-verdict") == "ok", page.locator("#checks").inner_text()
    assert page.locator('tr.check[data-verdict="block"]').count() == 0
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
    page.screenshot(path=str(artifacts_dir / "station-screen-recording.png"), full_page=True)

    # Pause without a reason is refused; with a reason it pauses.
    page.click("#pause")  # the browser's `required` keeps an empty reason from being sent
    assert page.locator("#pause-reason-input").evaluate("e => e.validity.valueMissing")
    page.fill("#pause-reason-input", PAUSE)
    page.click("#pause")
    state.filter(has_text="TẠM DỪNG / PAUSED").wait_for()
    assert page.locator("#pause-reason").inner_text() == PAUSE
    time.sleep(2.5)
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
    page.screenshot(path=str(artifacts_dir / "station-screen-end-confirmation.png"), full_page=True)
    page.click("#end-cancel")
    state.filter(has_text="ĐANG GHI / RECORDING").wait_for()
    assert page.locator("#end-confirmation").count() == 0
    page.click("#end")
    page.click("#end-confirm")
    state.filter(has_text="ĐÃ KẾT THÚC").wait_for(timeout=60_000)
    assert errors == [], errors
    assert page.locator("#manifest-sha256").inner_text()
    page.screenshot(path=str(artifacts_dir / "station-screen-ended.png"), full_page=True)

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
    assert [i["cause"] for i in report["interruptions"]] == ["pause"]
    assert report["interruptions"][0]["reason"] == PAUSE
