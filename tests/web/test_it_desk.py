"""The IT desk in headless Chromium, in Vietnamese and English, at 1366x768 and 390 px wide: the dashboard on one
screen, the province grid sorted and exported, the drill-down province -> site -> room, the room's and station's
history with its range picker, auto-refresh, and the admin forms' inline errors. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from tests.plugins.browser import log_in
from tests.web.conftest import PASSWORD, FakeNow
from web import demo
from web.coverage import DAY_US, US, Policy
from web.db import Database
from web.models import Room, Site, Station, UptimeSpan
from web.users import add_user

pytestmark = pytest.mark.browser

WIDE = {"width": 1366, "height": 768}
NARROW = {"width": 390, "height": 844}
ROOM = ("HNI-NTG", "P01")
"""The room whose month of heartbeats the tests read (its station beats every 30 min, a day of black picture)."""


def _month_of_beats(db: Database, now_us: int) -> str:
    """Thirty days of heartbeats for ROOM's station: values that move, a black day ten days ago, daily self-tests
    (the one eight days ago failed); its uptime spans follow. Returns the station id."""
    policy = Policy(interval_s=60)
    with db.session() as s:
        site = s.scalars(select(Site).where(Site.code == ROOM[0])).one()
        room = s.scalars(select(Room).where(Room.site_id == site.id, Room.code == ROOM[1])).one()
        st = s.scalars(select(Station).where(Station.room_id == room.id)).first()
        if st is None:
            st = Station(station_id="st-hni-ntg-p01", public_key="A" * 43 + "=", status="enrolled",
                         hardware_profile="synthetic", room_id=room.id, enrolled_at_us=now_us - 31 * DAY_US)
            s.add(st)
            s.flush()
        s.query(UptimeSpan).filter(UptimeSpan.station_pk == st.id).delete()
        last = None
        t = now_us - 30 * DAY_US
        while t <= now_us:
            day = (now_us - t) // DAY_US
            state = "camera_black" if day == 10 else "selftest_failed" if day == 8 else "working"
            hb = demo.demo_heartbeat_row(st.id, st.station_id, state, t, policy)
            doc = demo.heartbeat_doc(st.station_id, state, t)
            doc["disk_free_bytes"] = hb.disk_free_bytes = (200 - 30 + day) * 2**30  # the disk fills slowly
            doc["clock_offset_ms"] = hb.clock_offset_ms = 10 + (t // (1800 * US)) % 7
            doc["versions"] = {"agent": "0.1.0", "kit": "synthetic"}
            hb.body = json.dumps(doc)
            s.add(hb)
            last = hb
            t += 1800 * US
        s.add(UptimeSpan(station_pk=st.id, room_id=room.id, start_us=now_us - 30 * DAY_US,
                         end_us=now_us - 10 * DAY_US, closed=True))
        s.add(UptimeSpan(station_pk=st.id, room_id=room.id, start_us=now_us - 9 * DAY_US,
                         end_us=now_us + 120 * US, closed=False))
        s.flush()
        assert last is not None
        st.last_heartbeat_id, st.last_seen_us, st.status = last.id, last.sent_us, "enrolled"
        sid = st.station_id
        s.commit()
    return sid


@pytest.fixture
def country(app: Flask, db: Database, now: FakeNow) -> Iterator[str]:
    """The demo country (34 provinces, 137 rooms, a month of uptime) and an IT staff member and an admin."""
    with db.session() as s:
        demo.seed(s, now_us=now(), policy=app.extensions["irms"].heartbeats.policy)
        add_user(s, username="it.desk", display_name="Kỹ thuật viên", role="it_staff", password=PASSWORD,
                 actor="test", now_us=now())
        add_user(s, username="quan.tri", display_name="Quản trị", role="admin", password=PASSWORD,
                 actor="test", now_us=now())
        s.commit()
    yield _month_of_beats(db, now())


def _login(page: Page, base: str, username: str) -> None:
    log_in(page, base, username, PASSWORD)
    expect(page).not_to_have_url(re.compile(r"/login"))


def _fits(page: Page, width: int, height: int | None) -> None:
    size = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert size[0] <= width, f"the page is {size[0]} px wide in a {width} px window"
    if height is not None:
        assert size[1] <= height, f"the page is {size[1]} px tall in a {height} px window"


def _download(page: Page, button: str) -> list[list[str]]:
    with page.expect_download() as info:
        page.click(button)
    path = info.value.path()
    text = Path(path).read_text(encoding="utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("language", ["vi", "en"])
def test_dashboard_on_one_screen_sorted_exported_and_drilled(country: str, app: Flask, chromium_page: Page,
                                                              live_server: Callable[[Flask], str],
                                                              artifacts_dir: Path, language: str) -> None:
    page = chromium_page
    base = live_server(app)
    page.set_viewport_size(WIDE)
    _login(page, base, "it.desk")
    if language == "en":
        page.click("#lang-en")
    t = {"vi": {"h1": "Mức độ trang bị ghi âm ghi hình hỏi cung", "target": "mục tiêu 100%", "csv": "Tải CSV",
                "province": "Tỉnh/thành phố", "range7": "7 ngày", "failed": "không đạt", "passed": "đạt",
                "black": "hình ảnh bị đen"},
         "en": {"h1": "Interrogation recording coverage", "target": "target 100%", "csv": "Download CSV",
                "province": "Province", "range7": "7 days", "failed": "failed", "passed": "passed",
                "black": "the picture is black"}}[language]
    expect(page.locator("h1")).to_have_text(t["h1"])
    expect(page.locator("#facilities .target")).to_have_text(t["target"])
    tiles = page.locator("#provinces tbody tr")
    expect(tiles).to_have_count(34)
    failing_total = int(page.locator("#failing-total").inner_text())
    assert failing_total > 5
    expect(page.locator("#failing tbody tr")).to_have_count(5)  # named; the rest are counted and linked
    expect(page.locator("#all-failing")).to_be_visible()
    kinds = page.locator("#failing-kinds li .n").all_inner_texts()
    assert sum(int(n) for n in kinds) == failing_total
    page.screenshot(path=str(artifacts_dir / f"it-desk-dashboard-1366-{language}.png"), full_page=True)
    _fits(page, WIDE["width"], WIDE["height"])  # one screen: nothing below the fold, nothing to the side
    page.screenshot(path=str(artifacts_dir / f"it-desk-dashboard-1366-{language}.png"))

    # sorted by rooms working, worst first, then best first
    header = page.locator("#provinces thead th").nth(2)
    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    values = [float(v) for v in tiles.locator("td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => c.getAttribute('data-value'))")]
    assert values == sorted(values)
    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    values = [float(v) for v in tiles.locator("td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => c.getAttribute('data-value'))")]
    assert values == sorted(values, reverse=True)

    # the table as CSV, in the order shown
    expect(page.locator('button[data-csv-for="provinces"]')).to_have_text(t["csv"])
    rows = _download(page, 'button[data-csv-for="provinces"]')
    assert rows[0][0].startswith(t["province"]) and len(rows) == 35
    assert rows[1][0] == tiles.first.locator("td.pname").inner_text()
    assert {r[0] for r in rows[1:]} >= {"Thành phố Hà Nội", "Thành phố Huế"}

    # 390 px: one column, nothing wider than the window
    page.set_viewport_size(NARROW)
    page.reload()
    expect(tiles).to_have_count(34)
    _fits(page, NARROW["width"], None)
    page.screenshot(path=str(artifacts_dir / f"it-desk-dashboard-390-{language}.png"), full_page=True)
    page.set_viewport_size(WIDE)

    # drill down: province -> site -> room
    page.click('#provinces tr[data-province="HNI"] td.pname a')
    expect(page).to_have_url(re.compile(r"/coverage/provinces/HNI$"))
    expect(page.locator("h1")).to_have_text("Thành phố Hà Nội")
    page.click(f'#sites tr[data-site="{ROOM[0]}"] a')
    expect(page).to_have_url(re.compile(rf"/coverage/sites/{ROOM[0]}$"))
    page.click(f'#rooms tr[data-room="{ROOM[1]}"] a')
    expect(page).to_have_url(re.compile(rf"/coverage/sites/{ROOM[0]}/rooms/{ROOM[1]}$"))
    expect(page.locator("#uptime-chart svg rect")).to_have_count(30)  # a bar per day with data (today included)
    charts = page.locator("#probe-charts figure.chart")
    expect(charts).to_have_count(4)
    for i in range(4):  # every chart has a line, and its legend is under the plot, not on it
        expect(charts.nth(i).locator("svg path[class^=s]").first).to_be_attached()
        expect(charts.nth(i).locator("figcaption .chart-key")).to_have_count(1)
        assert charts.nth(i).locator("svg text[class^=legend]").count() == 0
    expect(page.locator("#heartbeats tbody tr")).to_have_count(20)
    expect(page.locator("#room-version")).to_contain_text("agent 0.1.0")
    results = page.locator("#selftests tbody td:nth-child(2)").all_inner_texts()
    assert t["failed"] in results and t["passed"] in results
    expect(page.locator("#range-picker a.current")).to_have_attribute("data-days", "30")
    page.screenshot(path=str(artifacts_dir / f"it-desk-room-1366-{language}.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.reload()
    _fits(page, NARROW["width"], None)
    page.screenshot(path=str(artifacts_dir / f"it-desk-room-390-{language}.png"), full_page=True)
    page.set_viewport_size(WIDE)

    # the time-range picker: a week, then the black day is out of range but the failed self-test is in
    page.click(f'#range-picker a:has-text("{t["range7"]}")')
    expect(page).to_have_url(re.compile(r"days=7$"))
    expect(page.locator("#range-picker a.current")).to_have_attribute("data-days", "7")
    expect(page.locator("#uptime-chart svg rect")).to_have_count(7)
    assert t["failed"] not in page.locator("#selftests tbody td:nth-child(2)").all_inner_texts()
    page.goto(page.url.replace("days=7", "days=30"))
    expect(page.locator("#probe-charts figure.chart").first.locator("svg")).to_be_visible()

    # the station's own page: version, history; IT staff see no session anywhere
    page.click(f'#room-stations a:has-text("{country}")')
    expect(page).to_have_url(re.compile(rf"/coverage/stations/{country}$"))
    expect(page.locator("#station-version")).to_have_text("agent 0.1.0, kit synthetic")
    expect(page.locator("#probe-charts figure.chart")).to_have_count(4)
    expect(page.locator("#nav-sessions")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / f"it-desk-station-1366-{language}.png"), full_page=True)
    assert page.goto(base + "/sessions").status == 403  # type: ignore[union-attr]

    # the stations list with last heartbeat and health
    page.goto(base + "/admin/stations")
    row = page.locator(f'#stations tr[data-station="{country}"]')
    expect(row.locator("td.health")).to_have_class(re.compile(r"\bok\b"))
    expect(row.locator("td.last-seen")).to_have_text("15/01/2027 15:00")
    page.screenshot(path=str(artifacts_dir / f"it-desk-stations-1366-{language}.png"))

    # the full failing list
    page.goto(base + "/")
    page.click("#all-failing")
    expect(page.locator("#failing-all tbody tr")).to_have_count(failing_total)
    expect(page.locator("#failing-all")).to_contain_text(t["black"])


def test_auto_refresh_replaces_the_page_in_place(country: str, app: Flask, now: FakeNow, chromium_page: Page,
                                                 live_server: Callable[[Flask], str]) -> None:
    page = chromium_page
    base = live_server(app)
    page.set_viewport_size(WIDE)
    _login(page, base, "it.desk")
    before = int(page.locator("#rooms-working").inner_text())
    assert before > 0
    page.evaluate("() => { window.notReloaded = true; }")
    page.select_option("#auto-refresh", "5")
    now.advance(3600)  # an hour without heartbeats: every station falls silent
    expect(page.locator("#rooms-working")).to_have_text("0", timeout=12_000)
    assert page.evaluate("() => window.notReloaded") is True  # the same page, its <main> replaced
    expect(page.locator("#auto-refresh")).to_have_value("5")  # kept across the refresh
    page.reload()
    expect(page.locator("#auto-refresh")).to_have_value("5")  # and across a reload (this browser's choice)
    page.select_option("#auto-refresh", "0")


def test_a_refresh_chosen_before_the_page_script_runs_is_kept(country: str, app: Flask, now: FakeNow,
                                                             chromium_page: Page,
                                                             live_server: Callable[[Flask], str]) -> None:
    """A hand quicker than the page's script (a slow link): the choice made before the script ran is the one kept.

    CI saw this as a race: the interval was picked between the page's arrival and its deferred script, so the
    page refreshed every 5 s but the refreshed page offered the default again, and so did the next visit.
    """
    page = chromium_page
    base = live_server(app)
    page.set_viewport_size(WIDE)
    _login(page, base, "it.desk")
    page.wait_for_load_state("load")
    held: list[Route] = []
    page.route("**/static/tables.js*", lambda route: held.append(route))
    page.goto(base + "/", wait_until="commit")
    page.wait_for_selector("#auto-refresh")
    page.select_option("#auto-refresh", "5")
    assert len(held) == 1, "the page script was not held back"
    held[0].continue_()
    page.evaluate("() => { window.notReloaded = true; }")
    now.advance(3600)
    expect(page.locator("#rooms-working")).to_have_text("0", timeout=12_000)
    assert page.evaluate("() => window.notReloaded") is True
    expect(page.locator("#auto-refresh")).to_have_value("5")  # kept across the refresh
    page.unroute("**/static/tables.js*")
    page.reload()
    expect(page.locator("#auto-refresh")).to_have_value("5")  # and by this browser for the next visit
    page.select_option("#auto-refresh", "0")


@pytest.mark.parametrize("language", ["vi", "en"])
def test_admin_forms_answer_inline_and_keep_the_input(country: str, app: Flask, chromium_page: Page,
                                                      live_server: Callable[[Flask], str], artifacts_dir: Path,
                                                      language: str) -> None:
    page = chromium_page
    base = live_server(app)
    page.set_viewport_size(WIDE)
    _login(page, base, "quan.tri")
    if language == "en":
        page.click("#lang-en")
    t = {"vi": {"code": "Chỉ dùng chữ cái, chữ số, '.', '_' hoặc '-'.", "added": "Đã thêm cơ sở HUE-VKS2.",
                "dup": "Cơ sở này đã có phòng với mã này.", "required": "Trường này là bắt buộc.",
                "revoked": "Đã thu hồi trạm"},
         "en": {"code": "Use only letters, digits, '.', '_' or '-'.", "added": "Site HUE-VKS2 added.",
                "dup": "This site already has a room with this code.", "required": "This field is required.",
                "revoked": "Station"}}[language]
    page.goto(base + "/admin/sites")
    page.click("text=" + ("Thêm cơ sở" if language == "vi" else "Add site"))
    page.fill("#site-code", "HUE VKS 2")
    page.fill("#site-name", "Viện kiểm sát Huế 2")
    page.select_option("#site-form select[name=province]", "HUE")
    page.select_option("#site-form select[name=facility_type]", "procuracy")
    page.click("#site-form button[type=submit]")
    form = page.locator("#site-form")
    expect(form.locator(".field-error")).to_have_text(t["code"])
    expect(page.locator("#site-code")).to_have_value("HUE VKS 2")  # what was typed is kept
    expect(page.locator("#site-name")).to_have_value("Viện kiểm sát Huế 2")
    expect(form.locator("select[name=province]")).to_have_value("HUE")
    expect(form.locator("select[name=facility_type]")).to_have_value("procuracy")
    page.screenshot(path=str(artifacts_dir / f"it-desk-admin-error-{language}.png"))
    page.fill("#site-code", "HUE-VKS2")
    page.click("#site-form button[type=submit]")
    expect(page.locator(".flash.success")).to_have_text(t["added"])
    expect(page.locator('#sites tr[data-site="HUE-VKS2"]')).to_be_visible()

    # a room: the site chosen from the list, a code that site already has
    page.click("text=" + ("Thêm phòng" if language == "vi" else "Add room"))
    page.select_option("#room-form select[name=site]", ROOM[0])
    page.fill("#room-code", ROOM[1])
    page.fill("#room-name", "Phòng mới")
    page.click("#room-form button[type=submit]")
    expect(page.locator("#room-form .field-error")).to_have_text(t["dup"])
    expect(page.locator("#room-form select[name=site]")).to_have_value(ROOM[0])
    expect(page.locator("#room-name")).to_have_value("Phòng mới")

    # an enrollment code for a room chosen from the site's rooms only
    page.goto(base + "/admin/stations")
    page.select_option("#code-form select[name=site]", "HNI-TTG")
    offered = page.locator("#code-form select[name=room] option:not([hidden])").evaluate_all(
        "os => os.map(o => o.value)")
    assert offered == ["", "P01", "P02", "P03"], offered
    page.select_option("#code-form select[name=room]", label="HNI-TTG / P02 — Phòng hỏi cung 02")
    page.click("#code-form button[type=submit]")
    expect(page.locator("#enrollment-code")).to_have_text(re.compile(r"^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$"))

    # a revocation without a reason: said beside the field; with one: done and said
    page.goto(base + "/admin/stations")
    row = page.locator('#stations tr[data-station="st-hni-ntg-p01"]')
    row.locator("button[type=submit]").click()
    row = page.locator('#stations tr[data-station="st-hni-ntg-p01"]')
    expect(row.locator(".field-error")).to_have_text(t["required"])
    row.locator("input[name=reason]").fill("máy bị hỏng")
    row.locator("button[type=submit]").click()
    expect(page.locator(".flash.success")).to_contain_text(t["revoked"])
    expect(page.locator('#stations tr[data-station="st-hni-ntg-p01"]')).to_contain_text("máy bị hỏng")


def test_any_table_with_an_id_exports_as_csv(country: str, app: Flask, chromium_page: Page,
                                            live_server: Callable[[Flask], str]) -> None:
    page = chromium_page
    base = live_server(app)
    _login(page, base, "quan.tri")
    page.goto(base + "/admin/users")
    rows = _download(page, 'button[data-csv-for="users"]')
    names = {r[0] for r in rows[1:]}
    assert {"it.desk", "quan.tri"} <= names and len(rows) == page.locator("#users tbody tr").count() + 1
    page.goto(base + "/admin/alerts")
    expect(page.locator('button[data-csv-for="open-alerts"]')).to_be_visible()
