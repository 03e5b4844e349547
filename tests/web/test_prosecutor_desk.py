"""The prosecutor's desk (issue 14) with real sessions: two recorded by the agent CLI (tests/plugins/recording.py)
and one recorded in-process by the station's Recorder with a pause and an investigator's marker, all in one store,
synced and verified by the server.

- sealed copies as background jobs: the zip is written append-only (every byte written is final: it can be sent
  before the copy is complete), a download opened before the build streams it to the end, the sealed file
  answers HTTP ranges, a tampered segment fails the job naming the rule, a dead builder's job is taken over, the
  file is removed after its keeping time; audited;
- sessions grouped by case, paged, sorted, searched by interrogator;
- in headless Chromium, in Vietnamese and English, at 1366x768 and 390 px wide: the session page (the case as
  title, the verification badge, Play / Annex / Export above the fold, h:mm:ss, events and end reasons in
  words), a failed session's badge naming the rule in words, the player (pause and marker on the scrubber, a
  click on it seeks, speed, ±10 s), a sealed copy followed to its seal and downloaded. Screenshots in
  test-artifacts/prosecutor-*.png.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from evidence.formats import CaseInfo
from recorder.clock import SystemClock
from recorder.profile import load_profile
from recorder.session import Recorder, RecorderSettings
from recorder.station import load_station
from storage.file import FileStore
from tests.plugins.browser import log_in, play_and_check_picture
from tests.plugins.recording import Recorded, Station
from tests.web.conftest import PASSWORD, SessionsWorld, csrf_token, enroll_existing_station, login
from tests.web.test_sessions import export_via_job
from verifier.export import export_zip
from web import export_jobs as J
from web import recordings as R
from web.db import Database
from web.models import AuditEntry, ExportJob, RecordingSession

PAUSE_REASON = "Nghỉ giải lao theo đề nghị của luật sư"
MARKER_LABEL = "Bắt đầu lời khai"


@dataclass
class Paused:
    store: Path
    station_pub: Path
    session_id: str


@pytest.fixture(scope="session")
def paused_recording(tmp_path_factory: pytest.TempPathFactory, recorded: Recorded) -> Paused:
    """A real session by station st-rec-02 (the station's Recorder, synthetic kit, as the station screen runs it):
    about 4 s, a marker, a 3 s pause with its reason, about 4 s more; case 7/2026/HS (the same case as the
    recorded store's first session), interrogator Phạm Văn D. Its data key is wrapped to the same custodian
    key as the recorded store's sessions (the one the server's custody holder holds), so it plays."""
    base = tmp_path_factory.mktemp("paused")
    base.mkdir(parents=True, exist_ok=True)
    own = recorded.station
    st = Station(home=base / "home", trust=base / "trust", custodian_key=own.custodian_key,
                 custodian_pub=own.custodian_pub)
    st.agent("keygen", "--station-id", "st-rec-02", "--custodian-public", str(own.custodian_pub))
    store = base / "store"
    old = os.environ.get("IRMS_TRUST")
    os.environ["IRMS_TRUST"] = str(st.trust)
    try:
        rec = Recorder(load_station(st.home), FileStore(store), load_profile("synthetic"), SystemClock(),
                       RecorderSettings(site="HN-CA-01", room="P102"))
        sid = rec.start(CaseInfo("7/2026/HS", "Lê Văn C", ("Phạm Văn D",), "Điều 183 BLTTHS"), None)
        worker = threading.Thread(target=lambda: rec.record(sid, None))
        worker.start()
        try:
            deadline = time.monotonic() + 60
            while len(rec.journal.segments(sid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            rec.mark(MARKER_LABEL)
            time.sleep(2.0)
            rec.pause(PAUSE_REASON)
            time.sleep(3.0)
            rec.resume("Tiếp tục hỏi cung")
            n = len(rec.journal.segments(sid))
            while len(rec.journal.segments(sid)) < n + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            rec.stop_requested.set()
            worker.join(timeout=60)
        rec.close(sid, "stopped")
        rec.finish_uploads()
    finally:
        if old is None:
            os.environ.pop("IRMS_TRUST", None)
        else:
            os.environ["IRMS_TRUST"] = old
    return Paused(store, st.home / "keys" / "station.pub", sid)


@dataclass
class Desk:
    sw: SessionsWorld
    store: Path
    first: str  # 7/2026/HS, 9 s, agent CLI
    second: str  # 8/2026/HS, 5 s
    paused: str  # 7/2026/HS, with a pause and a marker


def merged_store(dst: Path, *sources: Path) -> Path:
    for src in sources:
        shutil.copytree(src, dst, dirs_exist_ok=True)
    for p in dst.rglob("*"):
        if p.is_file():
            p.chmod(0o640)
    return dst


@pytest.fixture
def desk(sessions_world: SessionsWorld, paused_recording: Paused, app: Flask, db: Database,
         tmp_path: Path) -> Desk:
    """The recorded store and the paused session in one store, served, synced and verified."""
    sw = sessions_world
    rec: Recorded = sw.recorded  # type: ignore[assignment]
    store = merged_store(tmp_path / "desk-store", rec.store, paused_recording.store)
    st = app.extensions["irms"]
    st.config = st.config.model_copy(update={"store_url": str(store), "export_dir": str(tmp_path / "exports")})
    enroll_existing_station(db, "st-rec-02", paused_recording.station_pub, ("HN-CA-01", "P102"), sw.world.now())
    with db.session() as s:
        R.sync_store(s, R.store_of(st.config), sw.world.now())
    with db.session() as s:
        for row in s.scalars(select(RecordingSession)).all():
            R.verify_now(s, R.store_of(st.config), row, sw.world.now())
            assert row.verification == "verified", (row.session_id, row.verification_findings)
    return Desk(sw, store, sw.session_id, sw.other_session_id, paused_recording.session_id)


def as_prosecutor(app: Flask) -> FlaskClient:
    c = app.test_client()
    assert login(c, "prosecutor") == 302
    return c


def audit_of(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


# --- sealed copies as jobs ---------------------------------------------------------------------------------


def test_zip_is_written_append_only_so_it_can_be_sent_while_built(desk: Desk, app: Flask, db: Database) -> None:
    """Every byte export_zip has written at each step is a prefix of the finished archive (nothing is patched
    afterwards), bytes are there from the first object on, and the archive verifies offline as the folder did."""
    st = app.extensions["irms"]
    with db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == desk.paused)).one()
        opts = R.options_for(s, row)
    sink = io.BytesIO()
    seen: list[tuple[str, int, int, bytes]] = []
    info = export_zip(R.store_of(st.config), desk.paused, opts, sink, "case-file",
                      dt.datetime(2027, 1, 15, tzinfo=dt.UTC),
                      lambda step, done, total, written: seen.append((step, done, total, sink.getvalue())))
    final = sink.getvalue()
    assert [x[0] for x in seen][:2] == ["checking", "copying"] and seen[-1][0] == "sealing"
    copying = [x for x in seen if x[0] == "copying"]
    assert len(copying) >= 8 and copying[0][3], "bytes exist after the first object"
    assert all(final.startswith(x[3]) for x in seen), "an earlier byte was changed afterwards"
    sizes = [len(x[3]) for x in copying]
    assert sizes == sorted(sizes) and len(set(sizes)) >= 4, sizes  # growing object by object
    assert info["archive_size"] == len(final) and info["archive_sha256"] == hashlib.sha256(final).hexdigest()
    names = zipfile.ZipFile(io.BytesIO(final)).namelist()
    top = f"irms-{desk.paused}-case-file"
    assert f"{top}/EXPORT.json" in names and f"{top}/trust/stations/st-rec-02.pub" in names
    assert json.loads(zipfile.ZipFile(io.BytesIO(final)).read(f"{top}/EXPORT.json"))["segments"] == info["segments"]


def test_export_job_streams_from_before_the_build_and_resumes_with_ranges(desk: Desk, app: Flask, db: Database,
                                                                          tmp_path: Path) -> None:
    c = as_prosecutor(app)
    t = desk.sw.world.now()
    # The job as the session page's button makes it; the download is opened before any builder looked at it.
    with db.session() as s:
        job = ExportJob(session_id=desk.paused, label="procuracy-file", requested_by="prosecutor", created_us=t,
                        state="queued", step="", worker="", lease_us=0, objects_done=0, objects_total=0,
                        bytes_written=0, sha256="", manifest_sha256="", error="")
        s.add(job)
        s.flush()
        job_id = job.id
    resp = c.get(f"/exports/{job_id}/download", buffered=False)
    assert resp.status_code == 200 and resp.headers["X-IRMS-Export-State"] == "queued"
    assert "Content-Length" not in resp.headers and "attachment" in resp.headers["Content-Disposition"]
    streamed = b"".join(resp.response)  # type: ignore[arg-type]
    progress = c.get(f"/exports/{job_id}.json").get_json()
    assert progress["state"] == "done", progress
    assert len(streamed) == progress["size"] and hashlib.sha256(streamed).hexdigest() == progress["sha256"]
    out = tmp_path / "copy"
    zipfile.ZipFile(io.BytesIO(streamed)).extractall(out)
    res = desk.sw.recorded.station.verify("session", desk.paused, "--store",  # type: ignore[attr-defined]
                                          str(out / f"irms-{desk.paused}-procuracy-file"), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["interruptions"][0]["reason"] == PAUSE_REASON
    # Sealed: the same bytes with a length, an ETag, and ranges (an interrupted download resumes).
    whole = c.get(f"/exports/{job_id}/download")
    assert whole.status_code == 200 and whole.data == streamed and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["X-IRMS-Export-SHA256"] == progress["sha256"]
    part = c.get(f"/exports/{job_id}/download", headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part.data == streamed[1000:]
    assert part.headers["Content-Range"] == f"bytes 1000-{len(streamed) - 1}/{len(streamed)}"
    # Audited like the export always was: the sealed copy with its seal, and each download begun (not resumed).
    (sealed,) = [e for e in audit_of(db, "session.export") if json.loads(e.detail)["job"] == job_id]
    assert sealed.actor == "prosecutor" and json.loads(sealed.detail)["sha256"] == progress["sha256"]
    downloads = [e for e in audit_of(db, "session.export_download") if json.loads(e.detail)["job"] == job_id]
    assert len(downloads) == 2
    # The list shows it sealed, with its progress and seal.
    listing = c.get("/exports/").get_data(as_text=True)
    assert f'data-job="{job_id}" data-state="done"' in listing and progress["sha256"] in listing
    # Another prosecutor in scope does not see someone else's copy.
    desk.sw.world.user("ksv-khac", "prosecutor")
    desk.sw.world.assign("ksv-khac", "VKS-HNI")
    other = app.test_client()
    assert login(other, "ksv-khac") == 302
    assert other.get(f"/exports/{job_id}/download").status_code == 404
    assert str(job_id) not in other.get("/exports/").get_data(as_text=True).split("<tbody>")[1]


def test_tampered_segment_fails_the_job_with_the_rule(desk: Desk, app: Flask, db: Database) -> None:
    """The session was verified (cached); a segment altered in the store afterwards fails the copy, naming V06."""
    c = as_prosecutor(app)
    seg = sorted(desk.store.rglob(f"{desk.first}/seg/00000002.bin"))[0]
    data = bytearray(seg.read_bytes())
    data[60] ^= 0x01
    seg.write_bytes(bytes(data))
    job_id, progress = export_via_job(c, desk.first, "case-file")
    assert progress["state"] == "failed" and progress["error"].startswith("V06"), progress
    assert "segment 2" in progress["error"]
    export_dir = Path(app.extensions["irms"].config.export_dir)
    assert not J.part_path(export_dir, job_id).exists() and not J.final_path(export_dir, job_id).exists()
    assert c.get(f"/exports/{job_id}/download").status_code == 409
    page = c.get(f"/exports/{job_id}").get_data(as_text=True)
    assert 'data-state="failed"' in page and "V06" in page
    assert any(json.loads(e.detail)["job"] == job_id for e in audit_of(db, "session.export_failed"))


def test_a_dead_builders_job_is_taken_over_and_files_expire(desk: Desk, app: Flask, db: Database) -> None:
    c = as_prosecutor(app)
    world = desk.sw.world
    with db.session() as s:  # what a builder killed mid-way leaves: running, its lease in the past
        job = ExportJob(session_id=desk.second, label="case-file", requested_by="prosecutor",
                        created_us=world.now() - 120_000_000, state="running", step="copying",
                        worker="other-node:4242", lease_us=world.now() - 1, objects_done=3, objects_total=9,
                        bytes_written=12345, started_us=world.now() - 100_000_000, sha256="", manifest_sha256="",
                        error="")
        s.add(job)
        s.flush()
        job_id = job.id
    assert c.get(f"/exports/{job_id}").status_code == 200  # looking at it wakes this process's builder
    deadline = time.monotonic() + 60
    while c.get(f"/exports/{job_id}.json").get_json()["state"] != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
    with db.session() as s:
        job = s.get(ExportJob, job_id)
        assert job is not None and job.state == "done" and job.worker == J.WORKER and job.size
    # After its keeping time the file goes; the job and its audit entries stay.
    world.now.advance(app.extensions["irms"].config.export_keep_s + 1)
    assert login(c, "prosecutor") == 302  # the first login has ended meanwhile
    c.get("/exports/")
    export_dir = Path(app.extensions["irms"].config.export_dir)
    deadline = time.monotonic() + 30
    while J.final_path(export_dir, job_id).exists() and time.monotonic() < deadline:
        app.extensions["irms.export_builder"].wake()
        time.sleep(0.3)
    assert not J.final_path(export_dir, job_id).exists()
    assert c.get(f"/exports/{job_id}.json").get_json()["state"] == "expired"
    assert c.get(f"/exports/{job_id}/download").status_code == 404


def test_export_refused_for_bad_label_and_unverified(desk: Desk, app: Flask) -> None:
    c = as_prosecutor(app)
    token = csrf_token(c, f"/sessions/{desk.first}")
    assert c.post(f"/sessions/{desk.first}/exports", data={"label": "x", "csrf_token": token}).status_code == 400
    assert c.get("/exports/999999").status_code == 404


# --- sessions by case --------------------------------------------------------------------------------------


def groups_of(html: str) -> list[tuple[str, list[str]]]:
    out = []
    for body in re.findall(r'<tbody class="case-group"(.*?)</tbody>', html, re.S):
        case = re.search(r'data-case="([^"]*)"', body)
        out.append((case.group(1) if case else "", re.findall(r'<tr data-session="([^"]+)"', body)))
    return out


def test_sessions_grouped_by_case_paged_sorted_and_searched_by_interrogator(desk: Desk, app: Flask,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    c = as_prosecutor(app)
    html = c.get("/sessions/").get_data(as_text=True)
    groups = dict(groups_of(html))
    assert set(groups["7/2026/HS"]) == {desk.first, desk.paused} and groups["8/2026/HS"] == [desk.second]
    newest = [k for k, _ in groups_of(html)]
    oldest = [k for k, _ in groups_of(c.get("/sessions/?sort=oldest").get_data(as_text=True))]
    # Groups by their latest session: 7/2026/HS holds the paused session, recorded after the other two.
    assert newest == ["7/2026/HS", "8/2026/HS"] and oldest == ["8/2026/HS", "7/2026/HS"], (newest, oldest)
    assert c.get("/sessions/?sort=sideways").status_code == 400 and c.get("/sessions/?page=0").status_code == 400
    found = groups_of(c.get("/sessions/?interrogator=phạm văn").get_data(as_text=True))
    assert found == [("7/2026/HS", [desk.paused])]
    assert dict(groups_of(c.get("/sessions/?interrogator=Trần Thị B").get_data(as_text=True))) == {
        "7/2026/HS": [desk.first], "8/2026/HS": [desk.second]}
    assert "h:mm:ss" not in html and re.search(r">0:00:(0[5-9]|1\d)<", html)  # durations as h:mm:ss
    # An auditor without the personal-data grant sees each session alone: grouping tells no shared case.
    aud = app.test_client()
    assert login(aud, "auditor") == 302
    html = aud.get("/sessions/").get_data(as_text=True)
    assert [k for k, _ in groups_of(html)] == ["", "", ""] and "7/2026/HS" not in html
    assert 'name="interrogator"' not in html
    monkeypatch.setattr("web.sessions.PER_PAGE", 1)
    first_page = c.get("/sessions/").get_data(as_text=True)
    assert len(groups_of(first_page)) == 1 and 'id="page-next"' in first_page and 'id="page-prev"' not in first_page
    second_page = c.get("/sessions/?page=2").get_data(as_text=True)
    assert groups_of(second_page)[0][0] != groups_of(first_page)[0][0] and 'id="page-prev"' in second_page
    assert groups_of(c.get("/sessions/?page=9").get_data(as_text=True)) == []


# --- in the browser ----------------------------------------------------------------------------------------

VIEWPORTS = {"1366": {"width": 1366, "height": 768}, "390": {"width": 390, "height": 844}}
WORDS = {
    "vi": {"verified": "đã kiểm chứng", "start": "bắt đầu ghi", "end": "kết thúc ghi",
           "stopped": "điều tra viên kết thúc", "v06": "V06: nội dung một đoạn ghi đã bị sửa hoặc thay thế",
           "failed": "không đạt", "done": "đã niêm phong", "play": "Phát", "viewed": "xem phiên"},
    "en": {"verified": "verified", "start": "recording started", "end": "recording ended",
           "stopped": "ended by the investigator", "v06": "V06: a segment's content was altered or replaced",
           "failed": "failed", "done": "sealed", "play": "Play", "viewed": "viewed"},
}


@contextlib.contextmanager
def browser_page(chromium: Browser, lang: str, size: str) -> Iterator[Page]:
    context = chromium.new_context(locale="vi-VN" if lang == "vi" else "en-GB", timezone_id="Asia/Ho_Chi_Minh",
                                   viewport=VIEWPORTS[size])
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def browser_login(page: Page, base: str, lang: str) -> None:
    log_in(page, base, "prosecutor", PASSWORD)
    expect(page.locator("#nav-sessions")).to_have_count(1)
    if lang == "en":
        page.click("#lang-en")
        expect(page.locator("#lang-vi")).to_have_count(1)


def above_the_fold(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    vp = page.viewport_size or {"width": 0, "height": 0}
    assert box["y"] + box["height"] <= vp["height"] and box["x"] + box["width"] <= vp["width"] + 1, (selector, box, vp)


@pytest.mark.browser
@pytest.mark.parametrize("size", ["1366", "390"])
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_prosecutor_desk_in_the_browser(desk: Desk, app: Flask, chromium: Browser, lang: str, size: str,
                                        live_server: Callable[[Flask], str], artifacts_dir: Path,
                                        tmp_path: Path) -> None:
    w = WORDS[lang]
    base = live_server(app)

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(artifacts_dir / f"prosecutor-{name}-{lang}-{size}.png"), full_page=True)

    with browser_page(chromium, lang, size) as page:
        browser_login(page, base, lang)
        # The list: grouped by case, searched by interrogator.
        page.goto(base + "/sessions/")
        group = page.locator('tbody.case-group[data-case="7/2026/HS"]')
        expect(group.locator("tr[data-session]")).to_have_count(2)
        shot(page, "sessions")
        page.fill("#search-form input[name=interrogator]", "Phạm Văn")
        page.click("#search-form button[type=submit]")
        expect(page.locator("#sessions tr[data-session]")).to_have_count(1)
        expect(page.locator(f'tr[data-session="{desk.paused}"] .interrogators')).to_have_text("Phạm Văn D")
        page.locator(f'tr[data-session="{desk.paused}"] a').click()

        # The session page: the case as the title, the badge, the actions above the fold, h:mm:ss, words.
        expect(page.locator("#session-title")).to_have_text("7/2026/HS")
        expect(page.locator("#verification")).to_have_attribute("data-status", "verified")
        expect(page.locator("#verification")).to_contain_text(w["verified"])
        for sel in ("#play-link", "#annex-link", "#export-case-file"):
            expect(page.locator(sel)).to_be_visible()
            above_the_fold(page, sel)
        expect(page.locator("#duration")).to_have_text(re.compile(r"^0:00:(0[6-9]|1\d)$"))
        expect(page.locator('#events tr[data-kind="start"] td').nth(1)).to_have_text(w["start"])
        expect(page.locator('#events tr[data-kind="end"] td').nth(1)).to_have_text(w["end"])
        expect(page.locator("#end-reason")).to_have_text(w["stopped"])
        expect(page.locator('#events tr[data-kind="end"] td').nth(2)).to_have_text(w["stopped"])
        expect(page.locator('#custody tr[data-action="session.view"] td').nth(2)).to_have_text(w["viewed"])
        expect(page.locator('#interruptions tr[data-cause="pause"]')).to_contain_text(PAUSE_REASON)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= (page.viewport_size or {})["width"] + 1
        shot(page, "session")

        # The player: the pause and the marker on the scrubber, a click on it seeks, speed, jumps.
        page.click("#play-link")
        expect(page.locator("#player-kind")).to_have_text("hls.js")
        page.wait_for_function("() => isFinite(document.getElementById('player').duration) && "
                               "document.getElementById('player').duration > 5")
        expect(page.locator('#scrubber .sc-pause[data-cause="pause"]')).to_have_count(1)
        expect(page.locator("#scrubber .m-investigator")).to_have_count(1)
        expect(page.locator("#scrubber .sc-pause")).to_have_attribute("title", re.compile(PAUSE_REASON))
        page.click("#player")  # a user gesture, as pressing play: a real picture, time advancing
        play_and_check_picture(page, timeout_ms=20_000)
        page.evaluate("() => document.getElementById('player').pause()")
        duration = float(page.evaluate("() => document.getElementById('player').duration"))
        pause_left = page.evaluate("() => parseFloat(document.querySelector('#scrubber .sc-pause').style.left)")
        assert 20 < pause_left < 80, pause_left  # the pause lies inside the media, not at an end
        page.locator("#scrubber").scroll_into_view_if_needed()  # under a 16:9 picture at 768 px high
        box = page.locator("#scrubber").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
        page.wait_for_function(f"() => Math.abs(document.getElementById('player').currentTime - {duration * 0.75})"
                               " < 0.6")
        page.select_option("#speed", "2")
        assert page.evaluate("() => document.getElementById('player').playbackRate") == 2
        page.select_option("#speed", "0.5")
        assert page.evaluate("() => document.getElementById('player').playbackRate") == 0.5
        page.evaluate("() => { document.getElementById('player').currentTime = 1; }")
        page.wait_for_function("() => Math.abs(document.getElementById('player').currentTime - 1) < 0.3")
        page.click("#jump-forward")
        page.wait_for_function("() => Math.abs(document.getElementById('player').currentTime - 11) < 0.6")
        page.click("#jump-back")
        page.wait_for_function("() => Math.abs(document.getElementById('player').currentTime - 1) < 0.6")
        page.locator("#scrubber .m-investigator").click()  # the marker, about 2 s into the media
        page.wait_for_function("() => { const t = document.getElementById('player').currentTime; "
                               "return t > 1.5 && t < 6; }")
        expect(page.locator("#markers li")).to_contain_text(MARKER_LABEL)
        expect(page.locator("#media-time")).to_have_text(re.compile(r"^0:00:0[1-5] / 0:00:1\d$"))
        page.wait_for_function("() => document.getElementById('player').readyState >= 2")
        shot(page, "player")

        # A sealed copy: a job whose page follows it to its seal; the download is that file.
        page.goto(f"{base}/sessions/{desk.paused}")
        page.click("#export-case-file")
        expect(page.locator("#export-state")).to_have_attribute("data-state", "done", timeout=60_000)
        expect(page.locator("#export-state")).to_have_text(w["done"])
        expect(page.locator("#export-progress")).to_have_attribute("value", "100")
        seal = page.locator("#export-sha256").inner_text()
        assert re.fullmatch(r"[0-9a-f]{64}", seal), seal
        shot(page, "export-job")
        with page.expect_download() as dl:
            page.click("#export-download")
        path = tmp_path / "copy.zip"
        dl.value.save_as(path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == seal
        page.click("#all-exports")
        expect(page.locator('#export-jobs tr[data-state="done"] .seal').first).to_have_text(seal)
        shot(page, "exports")


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_failed_session_badge_names_the_rule_in_words(desk: Desk, app: Flask, db: Database, chromium: Browser,
                                                      lang: str, live_server: Callable[[Flask], str],
                                                      artifacts_dir: Path) -> None:
    seg = sorted(desk.store.rglob(f"{desk.second}/seg/00000001.bin"))[0]
    data = bytearray(seg.read_bytes())
    data[40] ^= 0x01
    seg.write_bytes(bytes(data))
    st = app.extensions["irms"]
    with db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == desk.second)).one()
        R.verify_now(s, R.store_of(st.config), row, desk.sw.world.now())
    base = live_server(app)
    for size in VIEWPORTS:
        with browser_page(chromium, lang, size) as page:
            browser_login(page, base, lang)
            page.goto(f"{base}/sessions/{desk.second}")
            expect(page.locator("#verification")).to_have_attribute("data-status", "failed")
            expect(page.locator("#verification")).to_contain_text(WORDS[lang]["failed"])
            expect(page.locator('#verification-words .rule[data-rule="V06"]')).to_have_text(WORDS[lang]["v06"])
            above_the_fold(page, "#verification-words")
            expect(page.locator("#export-case-file")).to_have_count(0)
            page.screenshot(path=str(artifacts_dir / f"prosecutor-session-failed-{lang}-{size}.png"), full_page=True)
            page.goto(f"{base}/sessions/")
            expect(page.locator(f'tr[data-session="{desk.second}"] .verification')).to_contain_text(
                WORDS[lang]["v06"])


def test_player_gets_the_pauses_for_its_scrubber(desk: Desk, app: Flask) -> None:
    """The replay page and markers.json carry the manifest's pauses (cause, times, reason) with the markers."""
    c = as_prosecutor(app)
    data = c.get(f"/replay/{desk.paused}/markers.json").get_json()
    (gap,) = data["interruptions"]
    assert gap["cause"] == "pause" and gap["reason"] == PAUSE_REASON and gap["end_us"] - gap["start_us"] > 2_500_000
    assert [m["label"] for m in data["investigator"]] == [MARKER_LABEL]
    page = c.get(f"/replay/{desk.paused}").get_data(as_text=True)
    assert 'data-interruptions="[{' in page and "&#34;cause&#34;: &#34;pause&#34;" in page
    assert 'id="speed"' in page and 'id="jump-back"' in page and "<script>" not in page  # static scripts only
