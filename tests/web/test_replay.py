"""Replay in headless Chromium: the prosecutor finds the case, sees "verified", plays it with hls.js
(a real, non-black picture; time advances), seeks to the middle (asserting where it landed), exports;
IT staff is refused at every content route. The recording is a real session made by the agent."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from tests.plugins.browser import log_in, play_and_check_picture, seek_and_check_picture
from tests.web.conftest import PASSWORD, SessionsWorld
from tests.web.test_sessions import content_routes, view_routes

pytestmark = pytest.mark.browser


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """SQLite only: the browser test is about the page, the database paths are tested in test_sessions."""
    path = tmp_path / "web.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite:///{path}"




FIRST_FRAME_JS = """document.addEventListener('DOMContentLoaded', () => {
  const v = document.getElementById('player');
  window.__ready = performance.now();
  if (v) { v.requestVideoFrameCallback(() => { window.__firstFrame = performance.now(); }); }
});"""


def login_as(page: Page, base: str, username: str) -> None:
    log_in(page, base, username, PASSWORD)


def test_prosecutor_finds_plays_seeks_and_exports(sessions_world: SessionsWorld, app: Flask, chromium_page: Page,
                                                  live_server: Callable[[Flask], str], artifacts_dir: Path,
                                                  tmp_path: Path) -> None:
    sw = sessions_world
    page = chromium_page
    base = live_server(app)
    login_as(page, base, "prosecutor")
    page.click("#nav-sessions")
    page.fill("#search-form input[name=case]", "7/2026/HS")
    page.click("#search-form button[type=submit]")
    rows = page.locator("#sessions tr[data-session]")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".verification")).to_have_text("đã kiểm chứng")
    rows.first.locator("a").click()
    expect(page.locator("#verification")).to_have_attribute("data-status", "verified")
    expect(page.locator("#timeline rect.tl-recorded").first).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "session-page.png"), full_page=True)

    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.add_init_script(FIRST_FRAME_JS)
    page.click("#play-link")
    expect(page.locator("#player-kind")).to_have_text("hls.js")  # hls.js, not Chromium's native HLS
    expect(page.locator("#watermark")).to_contain_text("Prosecutor")
    expect(page.locator("#wm-time")).to_have_text(re.compile(r"\d\d/\d\d/\d{4}"))
    page.click("#player")  # a user gesture, as pressing play
    frame = play_and_check_picture(page, timeout_ms=20_000)
    duration = frame["d"]
    assert duration > 7, frame  # the 9-second session

    # the page carried the playlist: the player's first request is the first segment, asked for once,
    # from the page's head (static/replay-first.js), not again by hls.js
    media = [u.rsplit("/", 2)[-2:] for u in asked if "/seg/" in u or u.endswith(".m3u8")]
    assert media[0] == ["seg", "00000000.ts"] and not any(u.endswith(".m3u8") for u in asked), media
    assert media.count(["seg", "00000000.ts"]) == 1, media
    # the next entry is asked for once the first picture is on screen (or the 2 s hold has run out)
    ready, first, second = page.evaluate("() => [window.__ready, window.__firstFrame, performance"
                                         ".getEntriesByType('resource').find(e => e.name.includes('/seg/00000001'))"
                                         ".startTime]")
    assert second >= first or first - ready > 1900, (ready, first, second)
    seek_and_check_picture(page, round(duration / 2, 1), timeout_ms=10_000)
    expect(page.locator("#recorded-at")).to_have_text(re.compile(r"\d\d/\d\d/\d{4}"))
    page.screenshot(path=str(artifacts_dir / "replay.png"))

    page.goto(f"{base}/sessions/{sw.session_id}")
    page.click("#export-case-file")
    expect(page.locator("#export-state")).to_have_attribute("data-state", "done", timeout=60_000)
    with page.expect_download() as dl:
        page.click("#export-download")
    path = tmp_path / "case-file.zip"
    dl.value.save_as(path)
    assert path.stat().st_size > 10_000


def test_it_staff_refused_in_the_browser(sessions_world: SessionsWorld, app: Flask, chromium_page: Page,
                                         live_server: Callable[[Flask], str]) -> None:
    page = chromium_page
    base = live_server(app)
    login_as(page, base, "it-staff")
    expect(page.locator("#nav-sessions")).to_have_count(0)
    for path in view_routes(sessions_world.session_id) + content_routes(sessions_world.session_id):
        resp = page.request.get(base + path)
        assert resp.status == 403, path


def test_defence_counsel_opens_the_shared_link_and_plays(sessions_world: SessionsWorld, app: Flask,
                                                         chromium_page: Page, chromium: Browser,
                                                         live_server: Callable[[Flask], str],
                                                         artifacts_dir: Path) -> None:
    """The prosecutor shares the session from its page; the link (code in its fragment) opens it in another
    browser, which plays it with the party's name on the watermark; the address bar keeps no code."""
    sw = sessions_world
    page = chromium_page
    base = live_server(app)
    login_as(page, base, "prosecutor")
    # The prosecutor's own note on the recording: not for the defence (the share does not allow it).
    page.goto(f"{base}/replay/{sw.session_id}")
    page.wait_for_function("() => isFinite(document.getElementById('player').duration)", timeout=30_000)
    page.fill("#marker-label", "Ghi chú nội bộ của kiểm sát viên")
    page.click("#add-marker")
    expect(page.locator('#markers li[data-kind="server"]')).to_have_count(1)
    page.goto(f"{base}/sessions/{sw.session_id}")
    page.locator("#share-form").evaluate("f => f.closest('details').open = true")
    page.fill("#share-form input[name=party]", "Luật sư Lê Văn C")
    page.select_option("#share-form select[name=allow]", "replay+export")
    page.click("#share-form button[type=submit]")
    link = page.locator("#share-link").input_value()
    assert "/shared/#" in link
    page.screenshot(path=str(artifacts_dir / "share-created.png"), full_page=True)

    counsel = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    try:
        other = counsel.new_page()
        with other.expect_response(re.compile(r"/shared/\d+/markers\.json$")) as markers:
            other.goto(link)
        assert markers.value.ok and markers.value.json()["server"] == []
        expect(other.locator("#share-markers-note")).to_be_visible()
        expect(other.locator("#marker-form")).to_have_count(0)
        expect(other).to_have_url(re.compile(r"/shared/\d+/$"))
        assert "#" not in other.url
        expect(other.locator("#share-party")).to_contain_text("Luật sư Lê Văn C")
        expect(other.locator("#watermark")).to_contain_text("Luật sư Lê Văn C")
        expect(other.locator("#player-kind")).to_have_text("hls.js")
        other.click("#player")
        frame = play_and_check_picture(other, timeout_ms=20_000)
        assert frame["d"] > 7, frame
        expect(other.locator("#share-copy")).to_be_visible()
        other.screenshot(path=str(artifacts_dir / "share-replay.png"))
    finally:
        counsel.close()
