"""Two-factor login (web/twofactor.py) with the real app: enrolment at the first login of the roles that must,
codes from pyotp at the server's clock, replay refused (also on a second node of the same database), wrong codes
throttled, one-time recovery codes, the admin's and the CLI's reset, all audited; and the enrolment page in
Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.web.conftest import PASSWORD, FakeNow, World, csrf_token, login
from tests.web.test_accounts import audit_rows, copy_cookie, from_addr, post_form
from web import twofactor as TF
from web.app import create_app
from web.cli import main
from web.config import WebConfig
from web.db import Database
from web.models import LoginSession, RecoveryCode, User


@pytest.fixture
def required(app: Flask) -> Flask:
    """The app with the shipped default: prosecutors and admins must give a second factor."""
    st = app.extensions["irms"]
    st.config = st.config.model_copy(update={"totp_required_roles": ("prosecutor", "admin")})
    return app


def code_at(secret: str, now: FakeNow, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(now() // 1_000_000 + steps * 30)


def give_code(client: FlaskClient, code: str) -> tuple[int, str]:
    resp = client.post("/login/code", data={"code": code, "csrf_token": csrf_token(client, "/login/code")})
    return resp.status_code, resp.headers.get("Location") or resp.get_data(as_text=True)


def enrolled(db: Database, username: str, now: FakeNow) -> tuple[str, list[str]]:
    """Enrol `username` as the enrolment page would (secret, first code); returns the secret and recovery codes."""
    with db.session() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        secret = TF.pending_secret(s, user)
        codes = TF.confirm_enrolment(s, user, code_at(secret, now), now_us=now(), ip="test")
    now.advance(30)  # the enrolment's code is spent
    return secret, codes


def test_required_role_enrols_at_first_login(world: World, required: Flask, db: Database, now: FakeNow) -> None:
    world.user("kiem.sat", "prosecutor")
    world.user("kiem.toan", "auditor")
    aud = required.test_client()
    assert login(aud, "kiem.toan") == 302 and aud.get("/").status_code == 200  # not a required role

    c = required.test_client()
    resp = c.post("/login?next=/sessions/", data={"username": "kiem.sat", "password": PASSWORD,
                                                  "csrf_token": csrf_token(c)})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login/enrol"
    # The password alone opens nothing: pages send it back to enrolment, the API refuses.
    for path in ("/", "/sessions/", "/account"):
        r = c.get(path)
        assert r.status_code == 302 and r.headers["Location"] == "/login/enrol", path
    assert c.get("/api/v1/coverage").status_code == 401
    page = c.get("/login/enrol").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    m = re.search(r'id="totp-secret">([A-Z2-7]{32})<', page)
    assert m
    secret = m.group(1)
    assert c.get("/login/enrol").get_data(as_text=True).count(secret) == 1  # the same secret until confirmed
    token = csrf_token(c, "/login/enrol")
    wrong = c.post("/login/enrol", data={"code": code_at(secret, now, steps=5), "csrf_token": token})
    assert wrong.status_code == 400 and "Sai mã" in wrong.get_data(as_text=True)
    done = c.post("/login/enrol", data={"code": code_at(secret, now), "csrf_token": token})
    assert done.status_code == 200
    codes = re.findall(r'<li class="code">([a-z2-9-]+)</li>', done.get_data(as_text=True))
    assert len(codes) == 10 and all(re.fullmatch(r"([a-z2-9]{5}-){3}[a-z2-9]{5}", x) for x in codes)
    assert 'href="/sessions/"' in done.get_data(as_text=True)  # on to the page first asked for
    assert c.get("/sessions/").status_code == 200
    with db.session() as s:
        user = s.scalars(select(User).where(User.username == "kiem.sat")).one()
        assert user.totp_secret == secret and user.totp_pending is None
        stored = s.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)).all()
        assert len(stored) == 10 and not {x.replace("-", "") for x in codes} & set(stored)  # hashes only
        assert s.scalars(select(LoginSession.stage)).all() == ["", ""]
    [(actor, _, _, detail)] = audit_rows(db, "totp.enrol")
    assert actor == "kiem.sat" and detail == {"recovery_codes": 10, "replaced": False}


def test_code_needed_replay_refused_on_both_nodes(world: World, required: Flask, db: Database, now: FakeNow,
                                                   config: WebConfig) -> None:
    world.user("kiem.sat", "prosecutor")
    secret, _ = enrolled(db, "kiem.sat", now)
    other = create_app(required.extensions["irms"].config, clock=now, database=Database(config.database_url))
    try:
        a = required.test_client()
        assert login(a, "kiem.sat") == 302
        assert a.get("/").headers["Location"] == "/login/code"
        code = code_at(secret, now)
        assert give_code(a, code) == (302, "/")
        assert a.get("/").status_code == 200
        # Someone who saw the password and the code replays both, within the code's 30 s, on the other node.
        b = other.test_client()
        assert login(b, "kiem.sat") == 302
        assert b.get("/login/enrol").headers["Location"] == "/login/code"  # no way round the code
        status, body = give_code(b, code)
        assert status == 401 and "Mã này đã được dùng" in body
        assert b.get("/").status_code == 302
        # A code of an earlier step (still within the drift) is refused too; the next step's works on B.
        assert give_code(b, code_at(secret, now, steps=-1))[0] == 401
        now.advance(30)
        assert give_code(b, code_at(secret, now)) == (302, "/")
        copy_cookie(b, a)
        assert a.get("/").status_code == 200  # node B's login holds on node A
    finally:
        other.extensions["irms"].db.dispose()
    assert [x[1] for x in audit_rows(db, "login.")].count("login.second_factor") == 2
    assert [x[1] for x in audit_rows(db, "login.code_failed")] == ["login.code_failed"] * 2


def test_wrong_codes_throttled_and_the_password_does_not_reset_the_count(world: World, required: Flask,
                                                                          db: Database, now: FakeNow) -> None:
    world.user("quan.tri", "admin")
    secret, _ = enrolled(db, "quan.tri", now)
    attacker = from_addr(required, "203.0.113.9")
    for attempt in range(8):
        if attempt % 2 == 0 and attempt < 5:  # the password again between guesses
            assert login(attacker, "quan.tri") == 302
        assert give_code(attacker, f"{attempt:06d}")[0] == (401 if attempt < 5 else 429)
    assert give_code(attacker, code_at(secret, now))[0] == 429  # even the right code, until the delay passes
    owner = from_addr(required, "198.51.100.2")  # the admin from their own address is not held back
    assert login(owner, "quan.tri") == 302 and give_code(owner, code_at(secret, now)) == (302, "/")
    now.advance(TF.PENDING_S + 1)
    assert attacker.get("/login/code").headers["Location"] == "/login"  # the pending login has ended


def test_recovery_code_works_once_and_is_audited(world: World, required: Flask, db: Database, now: FakeNow) -> None:
    world.user("kiem.sat", "prosecutor")
    _, codes = enrolled(db, "kiem.sat", now)
    c = required.test_client()
    assert login(c, "kiem.sat") == 302
    assert give_code(c, codes[3].upper().replace("-", " ")) == (302, "/")  # typed as the user likes
    assert post_form(c, "/logout") == 302
    assert login(c, "kiem.sat") == 302
    assert give_code(c, codes[3])[0] == 401  # once only
    assert give_code(c, codes[4]) == (302, "/")
    [(actor, _, target, detail), (_, _, _, detail2)] = audit_rows(db, "totp.recovery_used")
    assert actor == "kiem.sat" and detail == {"recovery_codes_left": 9} and detail2 == {"recovery_codes_left": 8}


def test_admin_and_cli_reset_then_enrol_again(world: World, required: Flask, db: Database, now: FakeNow,
                                              config: WebConfig) -> None:
    world.user("quan.tri", "admin")
    world.user("kiem.sat", "prosecutor")
    admin_secret, _ = enrolled(db, "quan.tri", now)
    secret, _ = enrolled(db, "kiem.sat", now)
    lost = required.test_client()
    assert login(lost, "kiem.sat") == 302 and give_code(lost, code_at(secret, now))[0] == 302
    boss = required.test_client()
    assert login(boss, "quan.tri") == 302 and give_code(boss, code_at(admin_secret, now))[0] == 302
    assert 'action="/admin/users/kiem.sat/reset-two-factor"' in boss.get("/admin/users").get_data(as_text=True)
    assert post_form(boss, "/admin/users/kiem.sat/reset-two-factor", page="/admin/users") == 302
    assert lost.get("/").status_code == 302  # the login with the lost phone ended at once
    assert post_form(boss, "/admin/users/kiem.sat/reset-two-factor", page="/admin/users") == 409
    assert post_form(boss, "/admin/users/quan.tri/reset-two-factor", page="/admin/users") == 409  # not oneself
    c = required.test_client()
    assert login(c, "kiem.sat") == 302 and c.get("/").headers["Location"] == "/login/enrol"
    with db.session() as s:
        user = s.scalars(select(User).where(User.username == "kiem.sat")).one()
        assert user.totp_secret is None
        assert s.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all() == []
    assert "totp-secret" in c.get("/login/enrol").get_data(as_text=True)
    assert main(["--database", config.database_url, "user", "reset-two-factor", "kiem.sat"]) == 0  # the pending one
    assert main(["--database", config.database_url, "user", "reset-two-factor", "kiem.sat"]) == 1
    resets = audit_rows(db, "totp.reset")
    assert [(a, t, d["logins_ended"]) for a, _, t, d in resets][0] == ("quan.tri", "kiem.sat", 1)
    assert resets[1][0].startswith("irms-web cli") and resets[1][3]["logins_ended"] == 1  # the pending login


def test_enrolment_page_in_chromium(world: World, required: Flask, chromium_page: Page, now: FakeNow,
                                    live_server: Callable[[Flask], str]) -> None:
    page = chromium_page
    base = live_server(required)
    world.user("quan.tri", "admin")
    page.goto(base + "/login")
    page.fill("input[name=username]", "quan.tri")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(base + "/login/enrol")
    qr = page.locator("#totp-qr")
    expect(qr).to_be_visible()
    assert page.evaluate("document.getElementById('totp-qr').naturalWidth") > 100  # the QR image rendered (CSP)
    secret = page.locator("#totp-secret").inner_text()
    page.fill("#enrol-form input[name=code]", code_at(secret, now))
    page.click("#enrol-form button[type=submit]")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.click("#continue")
    expect(page).to_have_url(base + "/")
    page.goto(base + "/account")
    expect(page.locator("#totp-state")).to_contain_text("bật")
