"""The dashboard in headless Chromium: log in, read the figures, watch a room fail, switch language."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.web.conftest import PASSWORD, World, beat

pytestmark = pytest.mark.browser


def test_dashboard_figures_failing_room_and_language(world: World, app: Flask, chromium_page: Page,
                                                     live_server: Callable[[Flask], str],
                                                     artifacts_dir: Path) -> None:
    page = chromium_page
    base = live_server(app)
    a = world.enroll("HN-TTG", "P01")
    b = world.enroll("HN-CQDT", "P01")
    beat(world.client, a, world.now())
    beat(world.client, b, world.now())
    world.user("thanh.tra", "auditor")

    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("input[name=username]", "thanh.tra")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")

    expect(page.locator("h1")).to_have_text("Mức độ trang bị ghi âm ghi hình hỏi cung")
    expect(page.locator("#facilities-equipped")).to_have_text("2")
    expect(page.locator("#facilities-total")).to_have_text("3")
    expect(page.locator("#rooms-working")).to_have_text("2")
    expect(page.locator("#rooms-total")).to_have_text("3")
    expect(page.locator("#facility-ratio")).to_have_text("66.7%")
    expect(page.locator("#as-of")).to_have_text("15/01/2027 15:00:00")  # UTC 08:00 shown in Hà Nội time
    expect(page.locator("figure.trend svg")).to_be_visible()
    p02 = page.locator('tr[data-site="HN-TTG"][data-room="P02"] .reason')
    expect(p02).to_have_text("chưa có trạm ghi được đăng ký")
    expect(page.locator('tr[data-province="HUE"]')).to_contain_text("0 / 1")

    # station A stops reporting; B's camera goes black
    world.now.advance(121)
    beat(world.client, b, world.now(), probes=[
        {"check": "camera.black", "device": "wide", "ok": False, "reason": "the picture is black"},
        {"check": "mic.level", "device": "room", "ok": True}])
    page.reload()
    expect(page.locator("#rooms-working")).to_have_text("0")
    expect(page.locator("#facilities-equipped")).to_have_text("0")
    expect(page.locator("#stations-silent")).to_have_text("1")
    silent = page.locator('tr[data-site="HN-TTG"][data-room="P01"] .reason')
    expect(silent).to_have_text(f"trạm {a.station_id} mất liên lạc 2 phút")
    expect(page.locator('tr[data-site="HN-CQDT"][data-room="P01"] .reason')).to_contain_text(
        "thiết bị wide lỗi (camera.black): hình ảnh bị đen")
    page.screenshot(path=str(artifacts_dir / "dashboard-vi.png"), full_page=True)

    page.click("#lang-en")
    expect(page.locator("h1")).to_have_text("Interrogation recording coverage")
    expect(page.locator("#facilities .label")).to_have_text("Facilities equipped")
    expect(silent).to_have_text(f"station {a.station_id} silent for 2 min")
    expect(page.locator('tr[data-site="HN-CQDT"][data-room="P01"] .reason')).to_contain_text(
        "the picture is black")
    page.screenshot(path=str(artifacts_dir / "dashboard-en.png"), full_page=True)
    page.click("#lang-vi")
    expect(page.locator("#facilities .label")).to_have_text("Cơ sở được trang bị")


def test_admin_issues_code_and_revokes_in_the_browser(world: World, app: Flask, chromium_page: Page,
                                                      live_server: Callable[[Flask], str]) -> None:
    page = chromium_page
    base = live_server(app)
    st = world.enroll("HN-TTG", "P01")
    world.user("quan.tri", "admin")
    page.goto(base + "/login")
    page.fill("input[name=username]", "quan.tri")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.goto(base + "/admin/stations")
    page.select_option("#code-form select[name=site]", "HUE-NTG")
    page.click("#code-form button[type=submit]")
    expect(page.locator("#enrollment-code")).to_have_text(re.compile(r"^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$"))
    page.goto(base + "/admin/stations")
    row = page.locator(f'tr[data-station="{st.station_id}"]')
    row.locator("input[name=reason]").fill("máy bị mất")
    row.locator("button[type=submit]").click()
    expect(page.locator(f'tr[data-station="{st.station_id}"]')).to_contain_text("đã thu hồi: máy bị mất")
    assert beat(world.client, st, world.now())[0] == 403
