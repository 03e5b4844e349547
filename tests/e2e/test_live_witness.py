"""Live witnessing and markers end to end (issue 15 acceptance), with the real processes of the whole-session
test (`irms-web serve`, `irms-agent screen`, a file store, headless Chromium; tests/e2e/test_whole_session.py):

an investigator records; a prosecutor in scope opens the live view while it records and sees the picture
advance; the station screen shows "being watched"; the investigator drops a marker with a label from the
unit's list; the prosecutor adds one of their own; after the end both are on the replay scrubber, the
investigator's is in the annex and, with the viewer's start and stop, in the signed manifest; `irms-verify`
passes offline.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.test_whole_session import (  # noqa: F401 (world is a fixture)
    CASE,
    INTERROGATORS,
    LEGAL_BASIS,
    PROSECUTOR,
    SCREEN_PIN,
    SUSPECT,
    World,
    clean_env,
    login,
    new_context,
    wait_number,
    world,
)
from tests.plugins.browser import VIDEO_FRAME_JS
from tests.plugins.recording import BIN

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LABEL = "rights read"
NOTE = "Bị can yêu cầu luật sư"


def test_live_view_markers_and_witness_events(world: World, chromium: Browser, artifacts_dir: Path,  # noqa: F811
                                              tmp_path: Path) -> None:
    station = new_context(chromium)
    prosecutor = new_context(chromium)
    try:
        st = station.new_page()
        st.goto(world.screen_url + "/")
        st.fill("#pin", SCREEN_PIN)
        st.click("#log-in")
        st.fill("#case_number", CASE)
        st.fill("#suspect", SUSPECT)
        st.fill("#interrogators", INTERROGATORS)
        st.fill("#legal_basis", LEGAL_BASIS)
        st.fill("#expected_minutes", "30")
        st.click("#check")
        expect(st.locator("#preflight-result")).to_be_visible(timeout=60_000)
        st.click("#start")
        expect(st.locator("#state")).to_contain_text("RECORDING", timeout=60_000)
        sid = st.locator("#session").get_attribute("data-sid")
        assert sid
        expect(st.locator("#watched")).to_be_hidden()
        wait_number(st, "#segments", 2)

        # The prosecutor opens the live view while the session records.
        pp = prosecutor.new_page()
        login(pp, world.server_url, PROSECUTOR[0])
        deadline = time.monotonic() + 30
        while (resp := pp.goto(f"{world.server_url}/sessions/{sid}")) is None or resp.status != 200:
            assert time.monotonic() < deadline, "the session never reached the server"
            pp.wait_for_timeout(500)
        pp.click("#live-link")
        expect(pp.locator("#live-badge")).to_be_visible()
        expect(pp.locator("#player-kind")).to_have_text("hls.js")
        expect(pp.locator("#watermark")).to_contain_text(PROSECUTOR[1])
        pp.click("#player")
        pp.evaluate("() => document.getElementById('player').play()")
        pp.wait_for_function("() => document.getElementById('player').currentTime > 1.0", timeout=30_000)
        frame = pp.evaluate(VIDEO_FRAME_JS)
        assert frame["mean"] > 20 and frame["colours"] > 20, frame
        # The picture advances past what was recorded when the view opened: it follows the live edge.
        edge = "(() => { const s = document.getElementById('player').seekable; return s.length ? s.end(0) : 0; })()"
        first = float(pp.evaluate(f"() => {edge}"))
        pp.wait_for_function(f"() => {edge} > {first + 4}", timeout=30_000)
        pp.wait_for_function(f"() => document.getElementById('player').currentTime > {frame['t'] + 3}",
                             timeout=30_000)
        pp.screenshot(path=str(artifacts_dir / "live-view.png"), full_page=True)

        # The station screen shows who watches.
        expect(st.locator("#watched")).to_be_visible(timeout=20_000)
        expect(st.locator("#watchers")).to_contain_text(PROSECUTOR[1])
        st.screenshot(path=str(artifacts_dir / "live-station-watched.png"), full_page=True)

        # The investigator drops a marker; the prosecutor adds one of their own.
        st.select_option("#marker-label", LABEL)
        st.click("#marker")
        expect(st.locator("#markers li")).to_have_count(1, timeout=15_000)
        expect(st.locator("#markers li")).to_contain_text(LABEL)
        pp.fill("#marker-label", NOTE)
        pp.click("#add-marker")
        expect(pp.locator('#markers li[data-kind="server"]')).to_contain_text(NOTE)
        expect(pp.locator('#markers li[data-kind="investigator"]')).to_contain_text(LABEL, timeout=20_000)
        pp.close()  # the prosecutor stops watching

        st.wait_for_timeout(2000)
        st.click("#end")
        st.click("#end-confirm")
        expect(st.locator("#state")).to_contain_text("ĐÃ KẾT THÚC", timeout=90_000)
        deadline = time.monotonic() + 90
        while st.locator("#pending").inner_text().strip() != "0":
            assert time.monotonic() < deadline
            st.wait_for_timeout(500)
            st.reload()
        annex = st.request.get(world.screen_url + f"/session/{sid}/annex.pdf")
        from pypdf import PdfReader
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(annex.body())).pages)
        assert "Đánh dấu của điều tra viên: 1" in text and LABEL in text, text[-1500:]

        # After the end: both markers on the replay scrubber.
        pp = prosecutor.new_page()
        deadline = time.monotonic() + 60
        while True:
            pp.goto(f"{world.server_url}/sessions/{sid}")
            if pp.locator("#verification").get_attribute("data-status") == "verified":
                break
            assert time.monotonic() < deadline, "the ended session never verified"
            pp.wait_for_timeout(1000)
        expect(pp.locator("#timeline line.tl-marker")).to_have_count(1)
        expect(pp.locator("#timeline line.tl-note")).to_have_count(1)
        pp.click("#play-link")
        expect(pp.locator("#scrubber button.m-investigator")).to_have_count(1)
        expect(pp.locator("#scrubber button.m-server")).to_have_count(1)
        # A marker in the list jumps to its moment.
        pp.wait_for_function("() => isFinite(document.getElementById('player').duration)", timeout=30_000)
        pp.locator('#markers li[data-kind="investigator"] button').click()
        pp.wait_for_function("() => document.getElementById('player').currentTime > 0.5", timeout=10_000)
        pp.screenshot(path=str(artifacts_dir / "live-replay-markers.png"), full_page=True)
    finally:
        station.close()
        prosecutor.close()

    # The signed manifest holds the investigator's marker and the viewer's start and stop; never the
    # prosecutor's marker (an annotation on the server, not evidence).
    manifest = json.loads(next(world.store.rglob(f"{sid}/manifest.json")).read_bytes())
    kinds = [(e["kind"], e["detail"]) for e in manifest["events"]]
    assert ("marker", LABEL) in kinds, kinds
    starts = [d for k, d in kinds if k == "witness_start"]
    stops = [d for k, d in kinds if k == "witness_stop"]
    assert starts and all(PROSECUTOR[1] in d for d in starts) and sorted(starts) == sorted(stops), kinds
    assert NOTE not in json.dumps(manifest, ensure_ascii=False)
    res = subprocess.run([str(BIN / "irms-verify"), "session", sid, "--store", str(world.store), "--json"],
                         env=clean_env(IRMS_HOME=str(tmp_path / "elsewhere"),
                                       IRMS_TRUST=world.station_env["IRMS_TRUST"]),
                         capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
