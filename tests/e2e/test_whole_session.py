"""A whole interrogation session end to end, as people run it, with the real processes (issue 6 acceptance).

Server side, as an operator installs it: `irms-web db upgrade`, sites from CSV, a prosecutor and an IT staff
account, the custodian key made on the server and its public key exported to the station, a one-time
enrollment code, `irms-web serve` (gunicorn) on a free loopback port with a fresh SQLite database and a file
store. Station side: a fresh IRMS_HOME enrolled with `irms-agent enroll`, the custodian public key installed
with `irms-agent custodian`, and `irms-agent screen` (synthetic kit, the same file store) on a free port.

Then, in one headless Chromium (one context per person: they sit at different machines):
- the investigator fills the case form on the station screen, the pre-flight passes, records about 8 s,
  pauses with a reason, resumes, records about 6 s more, ends, and opens the annex (a PDF);
- the session reaches the server by the station's session events; the operator's periodic
  `irms-web sessions sync --verify` verifies it; the prosecutor logs in, finds the case by number, sees
  "verified" and the pause with its reason on the timeline, plays it (a real picture, time advances),
  seeks to the middle, and exports the case-file copy, which `irms-verify session` verifies offline;
- an IT staff account gets 403 at every content route of that session (listed from the app's url_map).
The site is in Hà Nội's unit and the prosecutor is assigned to it (`irms-web unit`).

Every process started here is stopped by its pid, also when the test fails.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.plugins.browser import log_in, play_and_check_picture, seek_and_check_picture
from tests.plugins.processes import Proc, Processes, free_port, wait_http
from tests.plugins.recording import BIN, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SITE, ROOM = "HN-CA-01", "P101"
SCREEN_PIN = "2027-0115"
CASE = "45/2026/HS"
SUSPECT = "Phạm Văn Đức"
INTERROGATORS = "Ngô Bảo Châu\nĐặng Thuỳ Linh"
LEGAL_BASIS = "Điều 183 Bộ luật Tố tụng hình sự 2015"
PAUSE_REASON = "Tạm dừng để bị can nghỉ uống nước"
RESUME_REASON = "Bị can đã nghỉ xong, tiếp tục hỏi cung"
PASSWORD = "mật-khẩu-đủ-dài-2026"
PASSPHRASE = "mật khẩu người giữ khoá e2e"
PROSECUTOR = ("ksv.lan", "Kiểm sát viên Lan")
IT_STAFF = ("it.minh", "Kỹ thuật Minh")
SEGMENT_S = 2  # the synthetic kit's segment length (hardware_profiles/synthetic.toml)



# --- processes, stopped by pid: tests/plugins/processes.py


def wait_log(proc: Proc, pattern: str, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, proc.tail(100_000))
        if m:
            return m
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{proc.name}: no {pattern!r} (exit {proc.popen.poll()}):\n{proc.tail()}")
        time.sleep(0.1)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any IRMS_* setting of the developer's shell, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRMS_")}
    env.update(extra)
    return env


# --- the world: server, enrolled station, station screen -----------------------------------------------------


@dataclass
class World:
    server_url: str
    screen_url: str
    store: Path
    server_env: dict[str, str]
    station_env: dict[str, str]
    tmp: Path
    procs: Processes

    def web(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        return web_cli(self.server_env, self.tmp, *args, stdin=stdin, timeout=timeout)


def web_cli(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    proc = subprocess.run([str(BIN / "irms-web"), *args], env=env, cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=timeout, check=False,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    assert proc.returncode == 0, f"irms-web {' '.join(args)} exited {proc.returncode}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def start_server(procs: Processes, env: dict[str, str], cwd: Path) -> tuple[str, Proc]:
    """`irms-web serve` (gunicorn, 2 workers) on a free loopback port; another port if that one was taken."""
    for attempt in range(3):
        port = free_port()
        proc = procs.spawn(f"irms-web-serve-{attempt}", [str(BIN / "irms-web"), "serve", "--host", "127.0.0.1",
                                                        "--port", str(port), "--workers", "2"], env, cwd)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/login", proc)
            return url, proc
        except AssertionError:
            if "Address already in use" not in proc.tail() or attempt == 2:
                raise
            procs.stop(proc)
    raise AssertionError("unreachable")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    procs = Processes(tmp_path)
    store = tmp_path / "store"
    server_home, station_home = tmp_path / "server", tmp_path / "station"
    server_home.mkdir()
    station_home.mkdir()
    config = server_home / "web.toml"
    database_url = f"sqlite:///{server_home / 'web.db'}"
    config.write_text(f"database_url = {json.dumps(database_url)}\nstore_url = {json.dumps(str(store))}\n")
    server_env = clean_env(IRMS_HOME=str(server_home), IRMS_WEB_CONFIG=str(config),
                           IRMS_WEB_TOTP_REQUIRED_ROLES="")  # two-factor login: tests/web/test_twofactor.py
    station_env = clean_env(IRMS_HOME=str(station_home), IRMS_TRUST=str(station_home / "trust"))
    try:
        web_cli(server_env, tmp_path, "db", "upgrade")
        server_url, _ = start_server(procs, server_env, tmp_path)  # boots while the rest is set up
        sites = tmp_path / "sites.csv"
        sites.write_text("province_code,province_name,site_code,site_name,facility_type,room_code,room_name\n"
                         f"HNI,Thành phố Hà Nội,{SITE},Cơ quan CSĐT Công an Hà Nội,investigation_office,"
                         f"{ROOM},Phòng hỏi cung 101\n", encoding="utf-8")
        web_cli(server_env, tmp_path, "import-sites", str(sites))
        for (username, name), role in ((PROSECUTOR, "prosecutor"), (IT_STAFF, "it_staff")):
            web_cli(server_env, tmp_path, "user", "add", username, "--role", role, "--name", name,
                    "--password-stdin", stdin=PASSWORD + "\n")
        # The site in Hà Nội's unit, the prosecutor assigned to it (web/scope.py).
        web_cli(server_env, tmp_path, "unit", "add", "VN", "--kind", "national")
        web_cli(server_env, tmp_path, "unit", "add", "VKS-HNI", "--kind", "province", "--parent", "VN")
        web_cli(server_env, tmp_path, "unit", "place", SITE, "VKS-HNI")
        web_cli(server_env, tmp_path, "unit", "assign", PROSECUTOR[0], "VKS-HNI")
        web_cli(server_env, tmp_path, "custodian", "new", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
        # a custodian officer unlocks the running server over its custody socket
        web_cli(server_env, tmp_path, "custody", "unlock", "--passphrase-stdin", stdin=PASSPHRASE + "\n")
        custodian_pub = tmp_path / "custodian.pub"
        web_cli(server_env, tmp_path, "custodian", "public", "--out", str(custodian_pub))
        code = web_cli(server_env, tmp_path, "station", "code", SITE, "--room", ROOM).strip()
        assert code and "\n" not in code, code

        # The station: enrolled with the server (makes its key), then the custodian public key installed.
        run_cli("irms-agent", "enroll", "--server", server_url, "--code", code, "--kit", "synthetic",
                "--screen-pin-stdin", env=station_env, timeout=120, input=SCREEN_PIN + "\n")
        run_cli("irms-agent", "custodian", str(custodian_pub), env=station_env, timeout=60)
        screen = procs.spawn("irms-agent-screen", [str(BIN / "irms-agent"), "screen", "--kit", "synthetic",
                                                   "--store", str(store), "--site", SITE, "--room", ROOM,
                                                   "--port", "0"], station_env, tmp_path)
        screen_url = wait_log(screen, r"http://127\.0\.0\.1:\d+").group(0)
        wait_http(screen_url + "/", screen)
        yield World(server_url, screen_url, store, server_env, station_env, tmp_path, procs)
    finally:
        procs.stop_all()


# --- helpers for the pages -------------------------------------------------------------------------------------


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh",
                                  viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(30_000)
    return context


def text_of(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def wait_number(page: Page, selector: str, at_least: int, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(f"Number(document.querySelector({json.dumps(selector)}).textContent) >= {at_least}",
                           timeout=timeout_ms)


def login(page: Page, base: str, username: str) -> None:
    log_in(page, base, username, PASSWORD)
    expect(page).not_to_have_url(re.compile(r"/login"))


def session_routes(session_id: str, db_path: Path) -> list[str]:
    """Every GET route of the server that serves something of one session, built from the app's url_map:
    the session and replay blueprints and any rule taking a `session_id` (a new content route is covered)."""
    from web.app import create_app
    from web.config import load_config
    from web.sessions import EXPORT_LABELS

    # Only the url_map is read; the audit key goes beside the database, never into the repository's instance/.
    app = create_app(load_config(env={}, database_url=f"sqlite:///{db_path}", secret_key="routes",
                                 audit_key_path=str(db_path.with_name("audit-signing.key"))))
    try:
        adapter = app.url_map.bind("127.0.0.1")
        choices: dict[str, tuple[Any, ...]] = {"label": EXPORT_LABELS, "idx": (0, 1), "first": (0,), "last": (1,),
                                            "share_id": (1,), "job_id": (1,)}
        urls: list[str] = []
        for rule in app.url_map.iter_rules():
            if "GET" not in (rule.methods or ()):
                continue
            if "session_id" not in rule.arguments and \
                    not rule.endpoint.startswith(("sessions.", "replay.", "exports.")):
                continue
            others = sorted(rule.arguments - {"session_id"})
            unknown = [a for a in others if a not in choices]
            assert not unknown, f"route {rule.rule}: give this test values for {unknown}"
            for combo in itertools.product(*(choices[a] for a in others)):
                values = dict(zip(others, combo, strict=True))
                if "session_id" in rule.arguments:
                    values["session_id"] = session_id
                urls.append(adapter.build(rule.endpoint, values))
    finally:
        app.extensions["irms"].db.dispose()
    return sorted(set(urls))


# --- the test -------------------------------------------------------------------------------------------------


def test_whole_session_station_to_prosecutor(world: World, chromium: Browser, artifacts_dir: Path,
                                             tmp_path: Path) -> None:
    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(artifacts_dir / f"e2e-{name}.png"), full_page=True)

    # ---- the investigator, at the station ----
    station = new_context(chromium)
    try:
        page = station.new_page()
        page.goto(world.screen_url + "/")
        page.fill("#pin", SCREEN_PIN)  # the station screen shows nothing before its PIN
        page.click("#log-in")
        page.fill("#case_number", CASE)
        page.fill("#suspect", SUSPECT)
        page.fill("#interrogators", INTERROGATORS)
        page.fill("#legal_basis", LEGAL_BASIS)
        page.fill("#expected_minutes", "30")
        shot(page, "station-form")
        page.click("#check")
        expect(page.locator("#preflight-result")).to_be_visible(timeout=60_000)
        checks = page.locator("#checks").inner_text()
        shot(page, "station-preflight")
        assert page.locator("#preflight-result").get_attribute("data-verdict") == "ok", checks
        assert page.locator('li.check[data-verdict="block"]').count() == 0, checks
        # The clock is checked against the server the station is enrolled with.
        expect(page.locator('li.check[data-check="clock.offset"]')).to_have_attribute("data-verdict", "ok")
        page.click("#start")

        state = page.locator("#state")
        expect(state).to_contain_text("ĐANG GHI / RECORDING", timeout=60_000)
        sid = page.locator("#session").get_attribute("data-sid")
        assert sid
        wait_number(page, "#segments", 8 // SEGMENT_S)  # about 8 s sealed
        page.wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=30_000)
        shot(page, "station-recording")

        page.fill("#pause-reason-input", PAUSE_REASON)
        page.click("#pause")
        expect(state).to_contain_text("TẠM DỪNG / PAUSED")
        expect(page.locator("#pause-reason")).to_have_text(PAUSE_REASON)
        shot(page, "station-paused")
        page.wait_for_timeout(3000)  # the pause lasts a few seconds (the length is the point, not a wait)

        page.fill("#resume-reason-input", RESUME_REASON)
        page.click("#resume")
        expect(state).to_contain_text("ĐANG GHI / RECORDING")
        resumed = time.monotonic()
        wait_number(page, "#segments", int(text_of(page, "#segments")) + 6 // SEGMENT_S)  # about 6 s more
        page.wait_for_timeout(max(0, 6 - (time.monotonic() - resumed)) * 1000)
        page.click("#end")
        page.click("#end-confirm")  # "End the session?": yes
        expect(state).to_contain_text("ĐÃ KẾT THÚC", timeout=90_000)
        assert re.fullmatch(r"[0-9a-f]{64}", text_of(page, "#manifest-sha256"))
        expect(page.locator("#interruptions")).to_contain_text(PAUSE_REASON)
        # Sealing and upload finish in the background; the investigator sees the queue empty.
        deadline = time.monotonic() + 90
        while text_of(page, "#pending") != "0":
            assert time.monotonic() < deadline, f"uploads still pending: {text_of(page, '#pending')}"
            page.wait_for_timeout(500)
            page.reload()
        shot(page, "station-ended")

        # The annex to the minutes, printable from the screen.
        href = page.locator("#annex").get_attribute("href")
        assert href
        annex = page.request.get(world.screen_url + href)
        assert annex.status == 200 and annex.headers["content-type"] == "application/pdf"
        assert annex.body()[:5] == b"%PDF-"
        from pypdf import PdfReader
        annex_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(annex.body())).pages)
        assert CASE in annex_text and sid in annex_text.replace("\n", ""), annex_text[:2000]
    finally:
        station.close()

    # ---- the prosecutor, on the server ----
    prosecutor = new_context(chromium)
    try:
        page = prosecutor.new_page()
        login(page, world.server_url, PROSECUTOR[0])
        page.click("#nav-sessions")

        def search() -> Locator:
            page.fill("#search-form input[name=case]", CASE)
            page.click("#search-form button[type=submit]")
            return page.locator(f'#sessions tbody tr[data-session="{sid}"]')

        # The station's session events brought the session (with its case metadata) to the server.
        deadline = time.monotonic() + 30
        row = search()
        while row.count() == 0:
            assert time.monotonic() < deadline, "the session never reached the server by its events"
            page.wait_for_timeout(500)
            row = search()
        expect(page.locator("#sessions tbody tr[data-session]")).to_have_count(1)
        expect(row).to_contain_text(SUSPECT)
        # The station reported the end and its uploads are done: the list verifies it by itself
        # (at most a few seconds after the last upload), without an operator's sync.
        deadline = time.monotonic() + 30
        before = text_of(page, f'#sessions tbody tr[data-session="{sid}"] .verification')
        while text_of(page, f'#sessions tbody tr[data-session="{sid}"] .verification') != "đã kiểm chứng":
            assert time.monotonic() < deadline, "the list never showed the ended session as verified"
            page.wait_for_timeout(1000)
            row = search()
        row = search()
        expect(row.locator(".verification")).to_have_text("đã kiểm chứng")
        # The operator's periodic job (cron) finds nothing left to verify.
        world.web("sessions", "sync", "--verify")
        shot(page, "server-list")
        row.locator("a").click()

        expect(page.locator("#verification")).to_have_attribute("data-status", "verified")
        expect(page.locator("#verification")).to_contain_text("đã kiểm chứng")
        expect(page.locator("#case-number")).to_have_text(CASE)
        pause_row = page.locator('#interruptions tr[data-cause="pause"]')
        expect(pause_row).to_have_count(1)
        expect(pause_row).to_contain_text(PAUSE_REASON)
        expect(page.locator("#timeline rect.tl-pause")).to_have_count(1)
        expect(page.locator("#timeline rect.tl-pause title")).to_contain_text(PAUSE_REASON)
        expect(page.locator('#events tr[data-kind="pause"]')).to_contain_text(PAUSE_REASON)
        expect(page.locator('#events tr[data-kind="resume"]')).to_have_count(1)
        shot(page, "server-session")
        server_annex = page.request.get(f"{world.server_url}/sessions/{sid}/annex.pdf")
        assert server_annex.status == 200 and server_annex.body()[:5] == b"%PDF-"

        # Play: hls.js, a real picture, time advancing; the watermark names the viewer.
        page.click("#play-link")
        expect(page.locator("#player-kind")).to_have_text("hls.js")
        expect(page.locator("#watermark")).to_contain_text(PROSECUTOR[1])
        page.click("#player")  # a user gesture, as pressing play
        frame = play_and_check_picture(page, timeout_ms=30_000)
        duration = float(frame["d"])
        # About 8 s before and 6 s after the pause; the pause itself is not in the media.
        assert 12 < duration < 40, frame
        shot(page, "replay")

        # Seek to the middle and check where it landed, then that it plays on from there.
        seek_and_check_picture(page, round(duration / 2, 1), timeout_ms=20_000)
        expect(page.locator("#recorded-at")).to_have_text(re.compile(r"\d\d/\d\d/\d{4}"))
        shot(page, "replay-seek")

        # Export the case-file copy and verify it offline, on "another machine" (no trust store, no server).
        page.goto(f"{world.server_url}/sessions/{sid}")
        page.click("#export-case-file")  # a background job: its page follows it, the download streams it
        expect(page.locator("#export-state")).to_have_attribute("data-state", "done", timeout=120_000)
        with page.expect_download(timeout=120_000) as dl:
            page.click("#export-download")
        archive = tmp_path / "case-file.zip"
        dl.value.save_as(archive)
        offline = tmp_path / "offline"
        zipfile.ZipFile(archive).extractall(offline)
        folder = offline / f"irms-{sid}-case-file"
        assert folder.is_dir(), sorted(p.name for p in offline.iterdir())
        (tmp_path / "elsewhere").mkdir()
        res = subprocess.run([str(BIN / "irms-verify"), "session", sid, "--store", str(folder), "--json"],
                             env=clean_env(IRMS_HOME=str(tmp_path / "elsewhere")), capture_output=True, text=True,
                             timeout=120, check=False, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stdout + res.stderr
        report = json.loads(res.stdout)
        assert [(i["cause"], i["reason"]) for i in report["interruptions"]] == [("pause", PAUSE_REASON)], report
    finally:
        prosecutor.close()

    # ---- IT staff: refused at every route that shows something of the session ----
    it = new_context(chromium)
    try:
        page = it.new_page()
        login(page, world.server_url, IT_STAFF[0])
        page.goto(world.server_url + "/admin/stations")  # logged in: the station pages are theirs
        expect(page.locator("body")).to_contain_text(SITE)
        expect(page.locator("#nav-sessions")).to_have_count(0)
        routes = session_routes(sid, tmp_path / "routes.db")
        assert any(r.startswith("/replay/") for r in routes) and any(r.startswith("/exports/") for r in routes), routes
        refused = {}
        for path in routes:
            resp = page.request.get(world.server_url + path, max_redirects=0)
            refused[path] = resp.status
            body = resp.body()
            assert CASE.encode() not in body and SUSPECT.encode() not in body, path
        assert set(refused.values()) == {403}, refused
        page.goto(f"{world.server_url}/replay/{sid}")
        shot(page, "it-staff-refused")
    finally:
        it.close()

    # Logins, views, replay, key use and export went into the audit log; its hash chain is unbroken.
    assert "audit log verified" in world.web("audit", "verify")
    print(f"\nbefore the operator's sync the list showed: {before!r}; routes refused to IT staff: {len(routes)}")
