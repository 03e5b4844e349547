"""Retention, legal hold and disposal (issue 17) against the real radosgw: the recorded sessions copied into a
bucket with Object Lock, served by the app; the app's clock (FakeNow) starts at the real time so that the locks
radosgw enforces are seconds long, and is moved on by hand for the undo window."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from minio.deleteobjects import DeleteObject
from sqlalchemy import select

from evidence.formats import locator_name
from evidence.keys import save_public_key
from evidence.tombstone import tombstone_name
from storage.base import ObjectStore
from storage.errors import ObjectLocked
from storage.file import FileStore
from storage.url import open_store
from tests.plugins.s3 import S3Server
from tests.web.conftest import FakeNow, SessionsWorld, csrf_token, login
from web import recordings as R
from web import retention as RT
from web.db import Database
from web.models import AuditEntry, Disposal, RecordingSession, Tombstone

pytestmark = pytest.mark.s3
BIN = Path(sys.executable).parent
DAY_S = 86_400


@pytest.fixture
def now() -> FakeNow:
    """The real time (conftest's starts in 2027): radosgw enforces the locks by its own, real clock."""
    return FakeNow(time.time_ns() // 1000)


@dataclass
class RW:
    sw: SessionsWorld
    app: Flask
    db: Database
    now: FakeNow
    store: ObjectStore
    s3: S3Server
    bucket: str

    def client(self, user: str) -> FlaskClient:
        c = self.app.test_client()
        assert login(c, user) == 302
        return c

    def post(self, c: FlaskClient, url: str, **data: object) -> int:
        resp = c.post(url, data={**data, "csrf_token": csrf_token(c, "/login")})
        assert not resp.headers.get("Location", "").startswith("/login"), f"{url}: logged out"
        return resp.status_code

    def names(self, sid: str) -> list[str]:
        with self.db.session() as s:
            row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
            return RT.objects_of(self.store, row)

    def outcome(self, c: FlaskClient, case: str, final_at: dt.datetime) -> None:
        assert self.post(c, "/cases/outcome", case_number=case, status="final", date=final_at.isoformat(),
                         category="") == 302

    def apply(self) -> RT.ApplyResult:
        with self.db.session() as s:
            return RT.apply(s, self.store, self.now())


@pytest.fixture
def rw(sessions_world: SessionsWorld, app: Flask, db: Database, now: FakeNow, s3_server: S3Server, s3_url: str,
       s3_bucket: str) -> Iterator[RW]:
    """The two recorded sessions in a radosgw bucket with Object Lock, verified from there; a second prosecutor in
    Hà Nội's unit (the four eyes) and a prosecutor of Huế (out of scope)."""
    src = FileStore(sessions_world.store, create=False)
    store = open_store(s3_url)
    for name in src.list():
        store.put(name, src.get(name))
    cfg = app.extensions["irms"].config.model_copy(update={"store_url": s3_url})
    app.extensions["irms"].config = cfg
    with db.session() as s:
        for row in s.scalars(select(RecordingSession)).all():
            assert R.verify_now(s, store, row, now()).status == "verified"
        s.commit()
    w = sessions_world.world
    w.user("prosecutor-2", "prosecutor")
    w.assign("prosecutor-2", "VKS-HNI")
    w.unit("VKS-HUE")
    w.user("prosecutor-out", "prosecutor")
    w.assign("prosecutor-out", "VKS-HUE")
    admin = app.test_client()
    assert login(admin, "admin") == 302
    rw = RW(sessions_world, app, db, now, store, s3_server, s3_bucket)
    assert rw.post(admin, "/retention/policies", unit="VKS-HNI", category="", anchor="final", years=0, days=1,
                   mode="governance") == 302
    try:
        yield rw
    finally:  # lift every hold, so that the bucket goes once its short locks end
        for name in store.list():
            if store.legal_hold(name):
                store.set_legal_hold(name, False)


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_retention_is_extended_and_never_shortened(rw: RW, db_url: str, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sid, other = rw.sw.session_id, rw.sw.other_session_id
    pro = rw.client("prosecutor")
    # Final judgment a day ago less a minute: the policy (final + 1 day) keeps it another minute.
    rw.outcome(pro, "7/2026/HS", real_now() - dt.timedelta(days=1) + dt.timedelta(seconds=60))
    names = rw.names(sid)
    assert locator_name(sid) in names and len(names) > 5
    res = rw.apply()
    assert (res.sessions, res.extended, res.kept, res.errors) == (1, len(names), 0, [])
    first = {n: rw.store.retention(n) for n in names}
    assert all(r is not None and r.mode.value == "GOVERNANCE" for r in first.values())
    assert all(rw.store.retention(n) is None for n in rw.names(other))  # its case has no outcome yet
    with rw.db.session() as s:
        view = RT.view_of(s, s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one(),
                          rw.now())
        assert view.status == RT.RetentionStatus.RETAINED and view.row.retain_until_us == view.until_us
    # Idempotent: the same again changes nothing (also from the command line).
    res = rw.apply()
    assert (res.extended, res.kept) == (0, len(names))
    from web import cli
    assert cli.main(["--database", db_url, "retention", "apply", "--store", rw.app.extensions["irms"].config.store_url]
                    ) == 0
    assert f"0 objects' retention extended, {len(names)} already retained" in capsys.readouterr().out
    monkeypatch.setenv("IRMS_HOME", str(tmp_path))  # where the command finds (makes) the audit key
    store_url = rw.app.extensions["irms"].config.store_url
    for command, said in (("propose", "0 disposals proposed"), ("list", ""), ("execute", "")):
        assert cli.main(["--database", db_url, "disposal", command,
                         *(["--store", store_url] if command == "execute" else [])]) == 0
        assert capsys.readouterr().out.strip() == said  # retained: nothing due
    # A later final date extends the lock...
    rw.outcome(pro, "7/2026/HS", real_now() - dt.timedelta(days=1) + dt.timedelta(seconds=120))
    assert rw.apply().extended == len(names)
    longer = {n: rw.store.retention(n) for n in names}
    assert all(longer[n].until > first[n].until for n in names)  # type: ignore[union-attr]
    # ...an earlier one never shortens it.
    rw.outcome(pro, "7/2026/HS", real_now() - dt.timedelta(days=1) + dt.timedelta(seconds=30))
    res = rw.apply()
    assert (res.extended, res.kept) == (0, len(names))
    assert {n: rw.store.retention(n) for n in names} == longer
    with pytest.raises(ObjectLocked):
        rw.store.delete(names[0])
    with rw.db.session() as s:
        actions = set(s.scalars(select(AuditEntry.action)))
    assert {"retention.policy", "case.outcome", "retention.apply"} <= actions


def test_outcome_and_hold_need_a_prosecutor_in_scope(rw: RW) -> None:
    sid = rw.sw.session_id
    for user, status in (("auditor", 403), ("admin", 403), ("prosecutor-out", 404)):
        c = rw.client(user)
        assert rw.post(c, "/cases/outcome", case_number="7/2026/HS", status="final", date="2026-01-01") == status
        assert rw.post(c, f"/sessions/{sid}/hold", reason="appeal pending") == status
    pro = rw.client("prosecutor")
    assert rw.post(pro, "/cases/outcome", case_number="7/2026/HS", status="appealed", date="2026-01-01") == 400
    assert rw.post(pro, "/cases/outcome", case_number="7/2026/HS", status="final", date="tomorrow") == 400


def test_a_hold_blocks_deletion_by_anyone(rw: RW) -> None:
    sid, other = rw.sw.session_id, rw.sw.other_session_id
    pro = rw.client("prosecutor")
    assert rw.post(pro, f"/sessions/{sid}/hold", reason="kháng cáo") == 302
    names = rw.names(sid)
    assert all(rw.store.legal_hold(n) for n in names)
    assert not any(rw.store.legal_hold(n) for n in rw.names(other))
    with pytest.raises(ObjectLocked, match="legal hold"):
        rw.store.delete(names[0])
    # The store's admin credentials, bypassing GOVERNANCE: refused while held.
    admin = rw.s3.client()
    objects = [DeleteObject(n, admin.stat_object(rw.bucket, n).version_id) for n in names]
    errors = list(admin.remove_objects(rw.bucket, objects, bypass_governance_mode=True))
    assert sorted(str(e.name) for e in errors) == sorted(names) and {e.code for e in errors} == {"AccessDenied"}
    assert all(rw.store.exists(n) for n in names)
    with rw.db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        assert RT.view_of(s, row, rw.now()).status == RT.RetentionStatus.HELD
        hold_id = RT.session_holds(s, row)[0].id
    page = pro.get(f"/sessions/{sid}").get_data(as_text=True)
    assert 'data-status="held"' in page and f'data-hold="{hold_id}"' in page
    # A hold on the whole case holds the case's sessions; lifting the first hold leaves them held.
    assert rw.post(pro, f"/sessions/{sid}/hold", reason="cả vụ án", whole_case="1") == 302
    assert rw.post(rw.client("prosecutor-out"), f"/holds/{hold_id}/lift") == 404
    assert rw.post(pro, f"/holds/{hold_id}/lift") == 302
    assert all(rw.store.legal_hold(n) for n in names)
    with rw.db.session() as s:
        case_hold = RT.holds_in_force(s)[0]
    assert case_hold.case_number == "7/2026/HS"
    assert rw.post(pro, f"/holds/{case_hold.id}/lift") == 302
    assert not any(rw.store.legal_hold(n) for n in names)
    assert rw.post(pro, f"/holds/{case_hold.id}/lift") == 409


def test_disposal_with_four_eyes_leaves_a_tombstone_and_a_hold_stops_it(rw: RW, tmp_path: Path) -> None:
    sid, other = rw.sw.session_id, rw.sw.other_session_id
    pro, pro2, admin = rw.client("prosecutor"), rw.client("prosecutor-2"), rw.client("admin")
    # The retention (a day from the final decision) ends 12 s from now, by the fake clock and radosgw's real
    # one alike: the fake clock is set to the real time here, not when the (slow) fixtures were made.
    rw.now.t_us = time.time_ns() // 1000
    final = real_now() - dt.timedelta(days=1) + dt.timedelta(seconds=12)
    for case in ("7/2026/HS", "8/2026/HS"):
        rw.outcome(pro, case, final)
    assert rw.apply().extended == len(rw.names(sid)) + len(rw.names(other))
    lock_ends = max(r.until for n in rw.names(sid) if (r := rw.store.retention(n)) is not None)
    assert rw.post(admin, "/disposals/propose") == 302
    with rw.db.session() as s:
        assert s.scalars(select(Disposal)).all() == []  # retention has not ended yet: nothing due
    rw.now.advance(20)
    assert rw.post(admin, "/disposals/propose") == 302
    with rw.db.session() as s:
        d1, d2 = (s.scalars(select(Disposal).where(Disposal.session_id == x)).one().id for x in (sid, other))
    assert rw.post(admin, f"/disposals/{d1}/approve") == 409  # who proposed may not approve
    for d in (d1, d2):
        assert rw.post(pro, f"/disposals/{d}/approve") == 302
    assert rw.post(pro, f"/disposals/{d1}/approve") == 409  # the same person twice
    assert rw.post(rw.client("prosecutor-out"), f"/disposals/{d1}/approve") == 404
    assert rw.post(rw.client("auditor"), f"/disposals/{d1}/approve") == 403
    for d in (d1, d2):
        assert rw.post(pro2, f"/disposals/{d}/approve") == 302
    with rw.db.session() as s:
        assert {x.state for x in s.scalars(select(Disposal))} == {"approved"}
    # During the undo window, a hold on the second session stops its disposal.
    rw.now.advance(3 * DAY_S)
    pro = rw.client("prosecutor")  # days on: a new login
    assert rw.post(pro, f"/sessions/{other}/hold", reason="tái thẩm") == 302
    with rw.db.session() as s:
        assert s.get(Disposal, d2).state == "stopped"  # type: ignore[union-attr]
    signer = rw.app.extensions["irms"].audit_signer
    rw.now.advance(3 * DAY_S)  # six days: still inside the window
    with rw.db.session() as s:
        assert RT.execute_due(s, rw.store, signer.key, rw.now()).executed == []
    assert rw.store.exists(locator_name(sid))
    rw.now.advance(DAY_S + 60)
    time.sleep(max(0.0, (lock_ends - real_now()).total_seconds()) + 1)  # radosgw's own clock ends the lock
    names = rw.names(sid)
    with rw.db.session() as s:
        res = RT.execute_due(s, rw.store, signer.key, rw.now())
    assert (res.executed, res.stopped, res.errors) == ([sid], [], [])
    assert not any(rw.store.exists(n) for n in names) and list(rw.store.list(f"HN-CA-01/P101/{sid}/")) == []
    kept = rw.names(other)
    assert kept and all(rw.store.exists(n) and rw.store.legal_hold(n) for n in kept)
    # The tombstone: in the database, in the store, on the page; it verifies offline against the server's key.
    with rw.db.session() as s:
        row = s.scalars(select(Tombstone).where(Tombstone.session_id == sid)).one()
        session_row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        assert session_row.disposed_at_us == rw.now()
    assert rw.store.get(tombstone_name(sid)).decode() == row.document
    resp = rw.client("auditor").get(f"/disposals/{d1}/tombstone.json")
    assert resp.status_code == 200
    doc = json.loads(resp.get_data())
    assert doc["session_id"] == sid and doc["objects"] == len(names) and doc["manifest_sha256"] == \
        session_row.manifest_sha256 and [a["by"] for a in doc["approved"]] == ["prosecutor", "prosecutor-2"]
    assert doc["proposed"]["by"] == "admin" and doc["policy"]["unit"] == "VKS-HNI"
    path, pem = tmp_path / "tombstone.json", tmp_path / "server.pub"
    path.write_bytes(resp.get_data())
    save_public_key(pem, signer.public_key)
    ok = subprocess.run([str(BIN / "irms-verify"), "tombstone", str(path), "--server-key", str(pem)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert sid in ok.stdout and "prosecutor, " not in ok.stdout and "(the key given)" in ok.stdout
    path.write_text(json.dumps({**doc, "objects": 1}))
    bad = subprocess.run([str(BIN / "irms-verify"), "tombstone", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "does not verify" in bad.stderr
    # The reports: auditors see what was disposed and what is held.
    auditor = rw.client("auditor")
    csv_text = auditor.get("/retention/sessions.csv").get_data(as_text=True)
    assert f"{sid},HN-CA-01,P101,,disposed" in csv_text and f"{other},HN-CA-01,P102,,held" in csv_text
    assert "7/2026/HS" not in csv_text  # no personal data for this auditor
    assert f"{d1},{sid},executed" in auditor.get("/retention/disposals.csv").get_data(as_text=True)
    assert other in auditor.get("/retention/holds.csv").get_data(as_text=True)
    page = auditor.get("/retention/").get_data(as_text=True)
    assert f'data-session="{sid}" data-status="disposed"' in page
    pro = rw.client("prosecutor")
    assert pro.get(f"/sessions/{sid}").status_code == 200  # the row stays, its objects are gone
    resp = pro.get(f"/replay/{sid}")
    assert resp.status_code == 404 and "disposed" in resp.get_data(as_text=True)
    resp = pro.post(f"/sessions/{sid}/exports", data={"label": "case-file", "csrf_token": csrf_token(pro, "/login")})
    assert resp.status_code == 404 and "disposed" in resp.get_data(as_text=True)
    with rw.db.session() as s:
        actions = [a for a in s.scalars(select(AuditEntry.action)) if a.startswith(("disposal.", "hold."))]
    assert actions.count("disposal.approve") == 4 and "disposal.execute" in actions and "disposal.stop" in actions
