"""CSRF, login throttling, redirects, append-only tables, the audit chain."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from werkzeug.test import TestResponse

from tests.web.conftest import PASSWORD, World, csrf_token, login
from web import audit
from web.db import Database
from web.errors import AuditBroken

# Every route for every role, in and out of scope: tests/web/test_authorization.py (generated from the url_map).
FORMS = {
    "/admin/sites": {"code": "HUE-VKS", "name": "VKS Huế", "province": "HUE", "facility_type": "procuracy"},
    "/admin/rooms": {"site": "HUE-NTG", "code": "P01", "name": "Phòng 1"},
    "/admin/codes": {"site": "HN-TTG", "room": "P01"},
    "/admin/stations/st-x/revoke": {"reason": "test"},
    "/admin/users": {"username": "new-user", "display_name": "New", "role": "auditor"},
    "/admin/users/other/role": {"role": "investigator"},
}


def test_csrf_refused(world: World, client: FlaskClient) -> None:
    world.user("boss", "admin")
    login(client, "boss")
    for path, form in FORMS.items():
        resp = client.post(path, data=form)
        assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True), path
        resp = client.post(path, data={**form, "csrf_token": "forged"})
        assert resp.status_code == 400, path
    assert client.post("/logout").status_code == 400
    assert client.post("/login", data={"username": "boss", "password": PASSWORD}).status_code == 400


def test_login_throttled(world: World, client: FlaskClient) -> None:
    world.user("victim", "admin")
    for _ in range(5):
        assert login(client, "victim", "wrong password!") == 401
    assert login(client, "victim") == 429  # even the right password, until the window passes
    world.now.advance(901)
    assert login(client, "victim") == 302


def test_unknown_user_and_wrong_password_look_the_same(world: World, client: FlaskClient) -> None:
    world.user("real", "auditor")
    token = csrf_token(client)
    a = client.post("/login", data={"username": "real", "password": "nope-nope-nope", "csrf_token": token})
    b = client.post("/login", data={"username": "ghost", "password": "nope-nope-nope", "csrf_token": token})
    assert a.status_code == b.status_code == 401
    def page(resp: TestResponse) -> str:  # CSRF tokens carry a timestamp: take them out
        return re.sub(r'value="[^"]*"', "", resp.get_data(as_text=True)).replace("real", "ghost")

    assert page(a) == page(b)


def test_no_open_redirect_after_login(world: World, client: FlaskClient) -> None:
    world.user("u", "auditor")
    token = csrf_token(client)
    resp = client.post("/login?next=https://evil.example/", data={"username": "u", "password": PASSWORD,
                                                                   "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_logout_ends_the_session(world: World, client: FlaskClient) -> None:
    world.user("u", "admin")
    login(client, "u")
    assert client.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.get("/").status_code == 302


def test_pages_escape_what_users_typed(world: World, client: FlaskClient) -> None:
    world.user("boss", "admin")
    login(client, "boss")
    token = csrf_token(client, "/admin/sites")
    client.post("/admin/sites", data={"code": "XSS-1", "name": "<script>alert(1)</script>", "province": "HUE",
                                      "facility_type": "procuracy", "csrf_token": token})
    page = client.get("/admin/sites").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_admin_actions_are_audited_and_chain_verifies(world: World, client: FlaskClient, db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")
    world.user("boss", "admin")
    login(client, "boss")
    token = csrf_token(client, "/admin/sites")
    client.post("/admin/rooms", data={"site": "HUE-NTG", "code": "P01", "name": "Phòng 1", "csrf_token": token})
    resp = client.post("/admin/codes", data={"site": "HUE-NTG", "room": "P01", "csrf_token": token})
    assert resp.status_code == 200 and 'id="enrollment-code"' in resp.get_data(as_text=True)
    client.post(f"/admin/stations/{st.station_id}/revoke", data={"reason": "stolen", "csrf_token": token})
    with db.session() as s:
        actions = [r[0] for r in s.execute(text("SELECT action FROM audit_log ORDER BY seq"))]
        report = audit.verify(s)
    for action in ("room.add", "enrollment_code.issue", "station.revoke", "login", "station.enroll"):
        assert action in actions
    assert report.entries == len(actions)
    assert "Chuỗi băm hợp lệ" in client.get("/admin/audit").get_data(as_text=True)


def test_append_only_tables_refuse_update_and_delete(world: World, db: Database) -> None:
    world.user("u", "admin")  # one audit entry
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(sql))


def test_audit_verify_detects_tampering(world: World, db: Database) -> None:
    world.user("a", "admin")
    world.user("b", "auditor")
    with db.engine.begin() as conn:  # an attacker with database rights drops the trigger first
        if db.dialect == "sqlite":
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        else:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        conn.execute(text("UPDATE audit_log SET target = 'c' WHERE seq = 2"))
    with db.session() as s, pytest.raises(AuditBroken, match="entry 2 was altered"):
        audit.verify(s)


def test_audit_verify_detects_a_deleted_entry(world: World, db: Database) -> None:
    world.user("a", "admin")
    world.user("b", "auditor")
    world.user("c", "prosecutor")
    with db.engine.begin() as conn:  # an attacker with database rights drops the trigger first
        if db.dialect == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        else:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    with db.session() as s, pytest.raises(AuditBroken):
        audit.verify(s)


def test_refusal_page_speaks_the_page_language(world: World, client: FlaskClient) -> None:
    world.user("it", "it_staff")
    assert login(client, "it") == 302
    page = client.get("/admin/audit")
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert "Vai trò của bạn không được phép dùng trang này." in html and "Chi tiết" in html
    assert "role it_staff may not use /admin/audit" in html  # the technical detail stays, below
    assert client.post("/language", data={"language": "en", "csrf_token": csrf_token(client, "/")}).status_code == 302
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "Your role may not use this page." in html and "Vai trò" not in html


def test_concurrent_audit_appends_wait_for_each_other(db: Database) -> None:
    """Many requests audited at the same moment (twenty live viewers opening the page at once): each append
    waits for the other (PostgreSQL: an advisory lock; SQLite: the write lock), none is refused, the chain holds."""
    import threading

    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def appender(n: int) -> None:
        start.wait()
        for i in range(5):
            try:
                with db.session() as s:
                    s.execute(text("SELECT 1"))  # a read first, as a request does before it audits
                    audit.append(s, at_us=1_800_000_000_000_000 + i, actor=f"ksv{n}", action="session.live",
                                 target="s", detail={"i": i})
            except BaseException as err:  # noqa: BLE001 - collected and reported below
                failures.append(err)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:3]
    with db.session() as s:
        report = audit.verify(s)
    assert report.entries >= 40
