"""Scoping (issue 13): units as a tree, case assignments, national users; auditors without personal data;
sessions shared with an outside party until a time (receipt, expiry, revocation, every use audited).

The recorded store's two sessions (tests/plugins/recording.py) are in HN-CA-01: the first in room P101
(case 7/2026/HS), the second in P102 (case 8/2026/HS); both name the suspect "Nguyễn Văn A", the
interrogator "Trần Thị B" and the legal basis "Điều 183 BLTTHS".
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from tests.web.conftest import SessionsWorld, World, csrf_token, login
from web.db import Database
from web.models import AuditEntry, Share

BIN = Path(sys.executable).parent
PERSONAL = ("Nguyễn Văn A", "Nguyễn", "Trần Thị B", "Điều 183", "7/2026/HS", "8/2026/HS")
"""Personal data of the recorded sessions: none of it may reach an auditor without the grant."""


def as_user(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, username) == 302
    return client


def session_urls(sid: str) -> list[str]:
    return ["/sessions/" + sid, f"/sessions/{sid}/annex.pdf",
            f"/replay/{sid}", f"/replay/{sid}/index.m3u8", f"/replay/{sid}/seg/00000000.ts",
            f"/api/v1/sessions/{sid}/witness"]


def audit_rows(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


@pytest.fixture
def split(sessions_world: SessionsWorld) -> SessionsWorld:
    """Room P102 belongs to a regional unit under Hà Nội; a Huế prosecutor and a national auditor exist."""
    w = sessions_world.world
    w.unit("VKS-HNI-KV1", kind="region", parent="VKS-HNI")
    w.place("HN-CA-01", "VKS-HNI-KV1", room="P102")
    w.unit("VKS-HUE")
    w.user("ksv-hue", "prosecutor")
    w.assign("ksv-hue", "VKS-HUE")
    w.user("ksv-kv1", "prosecutor")
    w.assign("ksv-kv1", "VKS-HNI-KV1")
    return sessions_world


def test_units_tree_cases_and_national(split: SessionsWorld, app: Flask, db: Database) -> None:
    sw = split
    first, second = sw.session_id, sw.other_session_id
    # The Hà Nội prosecutor sees both: P102's regional unit is below Hà Nội.
    hni = as_user(app, "prosecutor")
    page = hni.get("/sessions/").get_data(as_text=True)
    assert first in page and second in page
    # The regional prosecutor sees only the P102 session; the other answers as a missing one.
    kv1 = as_user(app, "ksv-kv1")
    page = kv1.get("/sessions/").get_data(as_text=True)
    assert second in page and first not in page
    for url in session_urls(first):
        resp = kv1.get(url)
        assert resp.status_code == 404 and b"Nguy" not in resp.data, (url, resp.status_code)
    assert kv1.get(f"/sessions/{second}").status_code == 200
    # Huế sees neither, not even by searching; the same 404 as an id that does not exist.
    hue = as_user(app, "ksv-hue")
    page = hue.get("/sessions/?suspect=Nguyễn").get_data(as_text=True)
    assert first not in page and second not in page
    for sid in (first, "0" * 32):
        resp = hue.get(f"/sessions/{sid}")
        assert resp.status_code == 404 and f"no session {sid}" in resp.get_data(as_text=True)
    # A case assigned by name opens that case's sessions outside the units, and only those.
    sw.world.assign_case("7/2026/HS", "ksv-hue")
    hue = as_user(app, "ksv-hue")
    for url in session_urls(first):
        assert hue.get(url).status_code == 200, url
    assert hue.get(f"/sessions/{second}").status_code == 404
    page = hue.get("/sessions/").get_data(as_text=True)
    assert first in page and second not in page
    # A site in no unit: only national users see it.
    sw.world.place("HN-CA-01", None)
    sw.world.place("HN-CA-01", None, room="P102")
    assert as_user(app, "prosecutor").get(f"/sessions/{first}").status_code == 404
    sw.world.user("ksv-vn", "prosecutor")
    sw.world.assign("ksv-vn", "VN")
    vn = as_user(app, "ksv-vn")
    page = vn.get("/sessions/").get_data(as_text=True)
    assert first in page and second in page
    assert vn.get(f"/replay/{second}/index.m3u8").status_code == 200
    # Who saw what is in the audit log; refusals read nothing (no view, no key use by Huế for the second).
    views = {(e.actor, e.target) for e in audit_rows(db, "session.view")}
    assert ("ksv-kv1", first) not in views and ("ksv-hue", first) in views and ("ksv-hue", second) not in views


def test_auditor_sees_verification_timeline_custody_but_no_personal_data(split: SessionsWorld, app: Flask,
                                                                          db: Database) -> None:
    sw = split
    sid = sw.session_id
    as_user(app, "prosecutor").get(f"/replay/{sid}/seg/00000000.ts")  # a replay, for the custody table
    aud = as_user(app, "auditor")
    answers = {}
    for url in ["/", "/sessions/", f"/sessions/{sid}", f"/sessions/{sw.other_session_id}", "/admin/audit",
                "/api/v1/coverage", f"/api/v1/sessions/{sid}/witness", "/sessions/?room=P101",
                "/sessions/?suspect=Nguyễn", "/sessions/?case=7/2026"]:
        resp = aud.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        answers[url] = resp.get_data(as_text=True)
        for word in PERSONAL:
            assert word not in answers[url], (url, word)
    detail = answers[f"/sessions/{sid}"]
    assert 'data-status="verified"' in detail and '<rect class="tl-recorded"' in detail
    assert 'id="personal-withheld"' in detail and 'id="suspect"' not in detail
    assert re.search(r'<tr data-action="session.replay"><td>[^<]+</td><td>prosecutor</td>', detail)
    assert 'data-action="custodian.key_use"' in detail
    assert sid in answers["/sessions/?room=P101"]
    # Searching by personal data finds nothing: the search is no oracle.
    assert sid not in answers["/sessions/?suspect=Nguyễn"] and sid not in answers["/sessions/?case=7/2026"]
    assert isinstance(json.loads(answers[f"/api/v1/sessions/{sid}/witness"]), list)
    for url in session_urls(sid)[1:5]:
        assert aud.get(url).status_code == 403, url
    # With the personal-data grant on the unit, the same auditor sees it (and may search by it).
    sw.world.assign("auditor", "VKS-HNI", personal_data=True)
    aud = as_user(app, "auditor")
    detail = aud.get(f"/sessions/{sid}").get_data(as_text=True)
    assert "Nguyễn Văn A" in detail and "7/2026/HS" in detail and "Trần Thị B" in detail
    assert sid in aud.get("/sessions/?suspect=Nguyễn").get_data(as_text=True)
    assert aud.get(f"/replay/{sid}").status_code == 403  # personal data is not content


def _share(client: FlaskClient, sid: str, **form: object) -> tuple[int, str, int]:
    """Share `sid`; (status, access code, share id)."""
    data = {"party": "Luật sư Lê Văn C", "party_kind": "defence_counsel", "allow": "replay+export", "days": 3,
            **form, "csrf_token": csrf_token(client, f"/sessions/{sid}")}
    resp = client.post(f"/sessions/{sid}/shares", data=data)
    page = resp.get_data(as_text=True)
    m = re.search(r'id="share-link" value="[^"#]+/shared/#([^"]+)"', page)
    sid_m = re.search(r'id="share-id">(\d+)<', page)
    return resp.status_code, m.group(1) if m else "", int(sid_m.group(1)) if sid_m else 0


def _unlock(app: Flask, code: str) -> tuple[FlaskClient, int]:
    party = app.test_client()
    token = csrf_token(party, "/shared/")
    resp = party.post("/shared/", data={"code": code, "csrf_token": token})
    return party, resp.status_code


def test_share_with_defence_counsel_until_a_time(split: SessionsWorld, app: Flask, db: Database,
                                                 tmp_path: Path) -> None:
    sw = split
    sid = sw.session_id
    pro = as_user(app, "prosecutor")
    assert pro.get(f"/sessions/{sid}").status_code == 200  # verified on view
    status, code, share_id = _share(pro, sid)
    assert status == 201 and len(code) >= 40 and share_id
    with db.session() as s:
        share = s.get(Share, share_id)
        assert share is not None and code not in json.dumps([share.code_hash, share.party])
        seal = share.manifest_sha256
        assert len(share.code_hash) == 64 and len(seal) == 64 and len(share.chain_head) == 64
    # Nobody reaches it without the code; the party unlocks it with the code and plays and downloads it.
    stranger = app.test_client()
    assert stranger.get(f"/shared/{share_id}/").status_code == 403
    assert stranger.get(f"/shared/{share_id}/seg/00000000.ts").status_code == 403
    assert _unlock(app, "not-the-code")[1] == 404
    party, status = _unlock(app, code)
    assert status == 302
    page = party.get(f"/shared/{share_id}/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Luật sư Lê Văn C (share" in html and seal in html
    assert party.get(f"/shared/{share_id}/index.m3u8").get_data(as_text=True).startswith("#EXTM3U")
    seg = party.get(f"/shared/{share_id}/seg/00000000.ts")
    assert seg.status_code == 200 and seg.data[0] == 0x47
    copy = party.get(f"/shared/{share_id}/copy.zip")
    assert copy.status_code == 200 and copy.mimetype == "application/zip"
    zipfile.ZipFile(io.BytesIO(copy.data)).extractall(tmp_path / "copy")
    (folder,) = list((tmp_path / "copy").iterdir())
    assert json.loads((folder / "EXPORT.json").read_text())["label"] == "defence-file"
    env = {"PATH": "/usr/bin:/bin", "IRMS_HOME": str(tmp_path / "nobody"), "IRMS_TRUST": str(tmp_path / "none")}
    ok = subprocess.run([str(BIN / "irms-verify"), "session", sid, "--store", str(folder)], capture_output=True,
                        text=True, env=env, timeout=120)
    assert ok.returncode == 0 and "VERIFIED" in ok.stdout, ok.stdout + ok.stderr
    # The share opens nothing else: not the other session, not the prosecutor's routes.
    assert party.get(f"/replay/{sid}/seg/00000000.ts").status_code in (302, 401)
    assert party.get(f"/shared/{share_id + 1}/").status_code == 403
    # The receipt: who, what, until when, the seal; no access code.
    receipt = pro.get(f"/sessions/{sid}/shares/{share_id}/receipt.pdf")
    assert receipt.status_code == 200 and receipt.data.startswith(b"%PDF")
    text_ = "".join(p.extract_text() for p in PdfReader(io.BytesIO(receipt.data)).pages)
    flat = text_.replace("\n", "")
    assert "Luật sư Lê Văn C" in text_ and "defence_counsel" in text_ and seal in flat and sid in flat
    assert f"IRMS1:{sid}:{seal}" in flat and "18/01/2027" in text_ and code not in flat  # T0 + 3 days, Hà Nội time
    # The end comes by itself: one second before, it plays; at the time, everything is refused at once.
    sw.world.now.advance(3 * 86400 - 1)
    assert party.get(f"/shared/{share_id}/seg/00000001.ts").status_code == 200
    sw.world.now.advance(1)
    for url in (f"/shared/{share_id}/", f"/shared/{share_id}/index.m3u8", f"/shared/{share_id}/seg/00000001.ts",
                f"/shared/{share_id}/copy.zip"):
        resp = party.get(url)
        assert resp.status_code == 403 and b"ended" in resp.data, url
    assert _unlock(app, code)[1] == 403
    # Every use is audited under the share's name.
    actions = [(e.actor, e.action) for e in audit_rows(db, "share.create") + audit_rows(db, "share.open")
               + audit_rows(db, "share.replay") + audit_rows(db, "share.export") + audit_rows(db, "share.refused")]
    who = f"share:{share_id}"
    assert ("prosecutor", "share.create") in actions and (who, "share.open") in actions
    assert (who, "share.replay") in actions and (who, "share.export") in actions and (who, "share.refused") in actions
    uses = [json.loads(e.detail) for e in audit_rows(db, "custodian.key_use") if e.actor == who]
    assert uses and all(u["purpose"] == "replay" for u in uses)


def test_share_revoked_at_once_and_only_what_it_allows(split: SessionsWorld, app: Flask, db: Database) -> None:
    sw = split
    sid = sw.session_id
    pro = as_user(app, "prosecutor")
    pro.get(f"/sessions/{sid}")
    status, code, share_id = _share(pro, sid, allow="export", party="Toà án nhân dân TP Hà Nội", party_kind="court")
    assert status == 201
    party, status = _unlock(app, code)
    assert status == 302
    assert party.get(f"/shared/{share_id}/").status_code == 200
    assert party.get(f"/shared/{share_id}/index.m3u8").status_code == 403  # export only
    assert party.get(f"/shared/{share_id}/seg/00000000.ts").status_code == 403
    # Out of scope: the Huế prosecutor can neither share nor revoke nor read the receipt.
    hue = as_user(app, "ksv-hue")
    assert _share(hue, sw.other_session_id)[0] in (404, 400)
    token = csrf_token(pro, f"/sessions/{sid}")
    assert hue.post(f"/sessions/{sid}/shares/{share_id}/revoke", data={"csrf_token": csrf_token(hue, "/")}
                    ).status_code == 404
    assert hue.get(f"/sessions/{sid}/shares/{share_id}/receipt.pdf").status_code == 404
    assert pro.post(f"/sessions/{sid}/shares/{share_id}/revoke", data={"csrf_token": token}).status_code == 302
    resp = party.get(f"/shared/{share_id}/copy.zip")
    assert resp.status_code == 403 and b"revoked" in resp.data
    assert [json.loads(e.detail)["share"] for e in audit_rows(db, "share.revoke")] == [share_id]
    detail = pro.get(f"/sessions/{sid}").get_data(as_text=True)
    assert 'data-action="share.revoke"' in detail and "Toà án nhân dân TP Hà Nội" in detail
    # A share's row is the record: it cannot be deleted.
    with db.engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text("DELETE FROM shares"))
        conn.commit()


def test_cli_units_cases_and_demo_country(world: World, config: object, db: Database,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from web.cli import main
    from web.demo import PROVINCES, demo_users
    from web.models import Unit, User, UserUnit
    args = ["--database", config.database_url]  # type: ignore[attr-defined]
    world.user("lan", "prosecutor")
    world.user("minh", "auditor")
    assert main([*args, "unit", "add", "VN", "--kind", "national", "--name", "Toàn quốc"]) == 0
    assert main([*args, "unit", "add", "VKS-HNI", "--kind", "province", "--parent", "VN"]) == 0
    assert main([*args, "unit", "add", "VKS-X", "--kind", "province"]) == 2
    assert "only the national unit has no parent" in capsys.readouterr().err
    assert main([*args, "unit", "place", "HN-TTG", "VKS-HNI"]) == 0
    assert main([*args, "unit", "place", "HN-TTG", "VKS-NONE"]) != 0
    assert main([*args, "unit", "assign", "lan", "VKS-HNI"]) == 0
    assert main([*args, "unit", "assign", "lan", "VKS-HNI", "--personal-data"]) == 2  # for auditors only
    assert main([*args, "unit", "assign", "minh", "VKS-HNI", "--personal-data"]) == 0
    assert main([*args, "case", "assign", "7/2026/HS", "lan"]) == 0
    assert main([*args, "case", "assign", "7/2026/HS", "minh"]) == 2  # prosecutors only
    assert main([*args, "case", "assign", "7/2026/HS", "lan", "--remove"]) == 0
    assert main([*args, "unit", "list"]) == 0
    out = capsys.readouterr().out
    assert "VKS-HNI\tprovince\tVN" in out
    acts = [e.action for e in audit_rows(db, "unit.add") + audit_rows(db, "unit.place")
            + audit_rows(db, "unit.assign_user") + audit_rows(db, "case.assign") + audit_rows(db, "case.unassign")]
    assert sorted(set(acts)) == ["case.assign", "case.unassign", "unit.add", "unit.assign_user", "unit.place"]
    # The demo country (three provinces): units for each province and a region below; users scoped to them.
    monkeypatch.setattr("sys.stdin", io.StringIO("mật-khẩu-demo-đủ-dài\n"))
    monkeypatch.setattr("web.demo.PROVINCES", PROVINCES[:3])
    from web.demo import seed
    from web.evidence import policy_of
    with db.session() as s:
        summary = seed(s, now_us=world.now(), policy=policy_of(config), days=2,  # type: ignore[arg-type]
                       provinces=PROVINCES[:3], with_history=False, users_password="mật-khẩu-demo-đủ-dài")
    assert summary.units == 7 and summary.users == 8
    with db.session() as s:
        hcm = s.scalars(select(Unit).where(Unit.code == "VKS-HCM")).one()
        region = s.scalars(select(Unit).where(Unit.code == "VKS-HCM-KV1")).one()
        assert region.parent_id == hcm.id
        user = s.scalars(select(User).where(User.username == "ksv.hcm")).one()
        assert s.scalars(select(UserUnit.unit_id).where(UserUnit.user_id == user.id)).all() == [hcm.id]
        sites = dict(s.execute(text("SELECT code, unit_id FROM sites WHERE code LIKE 'HCM-%'")).all())
        assert sites["HCM-NTG"] == region.id and sites["HCM-TTG"] == hcm.id
    assert {u for u, *_ in demo_users(PROVINCES[:3])} >= {"ksv.toanquoc", "kiemtra.toanquoc", "ksv.hni"}
    assert login(world.client, "ksv.hcm", "mật-khẩu-demo-đủ-dài") == 302


def test_admin_pages_change_units_members_and_cases(world: World, app: Flask, db: Database) -> None:
    from web.models import CaseAssignment, Site, Unit, User, UserUnit
    world.user("boss", "admin")
    world.user("lan", "prosecutor")
    world.user("minh", "auditor")
    world.unit("VN")
    c = as_user(app, "boss")

    def post(path: str, **form: object) -> int:
        return c.post(path, data={**form, "csrf_token": csrf_token(c, "/admin/units")}).status_code

    assert post("/admin/units", code="VKS-HNI", name="VKS Hà Nội", kind="province", parent="VN") == 302
    assert post("/admin/units", code="VKS-HNI", name="again", kind="province", parent="VN") == 409
    assert post("/admin/units", code="VKS-Y", name="Y", kind="planet", parent="VN") == 400
    assert post("/admin/units/place", site="HN-TTG", unit="VKS-HNI") == 302
    assert post("/admin/units/place", site="HN-TTG", room="P09", unit="VKS-HNI") == 404
    assert post("/admin/units/members", username="lan", unit="VKS-HNI", action="add") == 302
    assert post("/admin/units/members", username="minh", unit="VKS-HNI", personal_data="y", action="add") == 302
    assert post("/admin/cases", case_number="7/2026/HS", username="lan", action="add") == 302
    assert post("/admin/cases", case_number="7/2026/HS", username="lan", action="add") == 409
    page = c.get("/admin/units").get_data(as_text=True)
    assert 'data-unit="VKS-HNI"' in page and "7/2026/HS" in page
    with db.session() as s:
        unit = s.scalars(select(Unit).where(Unit.code == "VKS-HNI")).one()
        assert s.scalars(select(Site.unit_id).where(Site.code == "HN-TTG")).one() == unit.id
        members = dict(s.execute(select(User.username, UserUnit.personal_data).join(UserUnit)).all())
        assert members == {"lan": False, "minh": True}
        assert s.scalars(select(CaseAssignment.case_number)).all() == ["7/2026/HS"]
    assert post("/admin/units/members", username="lan", unit="VKS-HNI", action="remove") == 302
    assert post("/admin/cases", case_number="7/2026/HS", username="lan", action="remove") == 302
    with db.session() as s:
        assert s.scalars(select(UserUnit.user_id)).all() != [] and s.scalars(select(CaseAssignment)).all() == []
    acts = {e.action for e in audit_rows(db, "unit.add") + audit_rows(db, "unit.unassign_user")
            + audit_rows(db, "case.unassign")}
    assert acts == {"unit.add", "unit.unassign_user", "case.unassign"}
