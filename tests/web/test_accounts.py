"""Accounts: server-side revocable logins, disable / reset / role from the web and the CLI (audited),
and a login throttle an attacker cannot turn against the user (per user and address, in the database)."""

from __future__ import annotations

import io
import json
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from tests.web.conftest import PASSWORD, FakeNow, SessionsWorld, World, csrf_token, login
from web import i18n
from web.app import create_app
from web.cli import cli_actor, main
from web.config import WebConfig
from web.db import Database
from web.models import LoginSession, User


def audit_rows(db: Database, prefix: str) -> list[tuple[str, str, str, dict[str, object]]]:
    with db.session() as s:
        return [(a, act, t, json.loads(d)) for a, act, t, d in s.execute(text(
            "SELECT actor, action, target, detail FROM audit_log WHERE action LIKE :p ORDER BY seq"),
            {"p": prefix + "%"})]


def copy_cookie(src: FlaskClient, dst: FlaskClient) -> str:
    cookie = src.get_cookie("session")
    assert cookie is not None
    dst.set_cookie("session", cookie.value)
    return cookie.value


def post_form(client: FlaskClient, path: str, data: dict[str, str] | None = None, page: str = "/") -> int:
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)}).status_code


# --- logins are server-side and revocable ------------------------------------------------------------------


def test_copied_cookie_refused_on_content_after_logout(sessions_world: SessionsWorld, app: Flask,
                                                        db: Database) -> None:
    sid = sessions_world.session_id
    owner, thief = app.test_client(), app.test_client()
    sessions_world.login(owner, "prosecutor")
    copy_cookie(owner, thief)
    seg = f"/replay/{sid}/seg/00000000.ts"
    assert thief.get(seg).status_code == 200  # the copy works while the login holds
    assert post_form(owner, "/logout") == 302
    for path in (seg, "/exports/", f"/sessions/{sid}/annex.pdf"):
        resp = thief.get(path)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login"), path
    assert thief.get("/api/v1/coverage").status_code == 401
    with db.session() as s:
        row = s.scalars(select(LoginSession)).one()
        assert row.ended_at_us is not None and row.end_reason == "logout"
    assert [a[:2] for a in audit_rows(db, "logout")] == [("prosecutor", "logout")]


def test_cookie_carries_only_a_random_token(world: World, app: Flask, client: FlaskClient, db: Database) -> None:
    world.user("u", "auditor")
    assert login(client, "u") == 302
    raw = client.get_cookie("session")
    assert raw is not None
    data = app.session_interface.get_signing_serializer(app).loads(raw.value)  # type: ignore[attr-defined]
    assert set(data) - {"csrf_token", "_permanent", "lang"} == {"sid"}
    with db.session() as s:
        pw_hash = s.scalars(select(User.password_hash).where(User.username == "u")).one()
        stored = s.scalars(select(LoginSession.token_hash)).one()
    assert stored != data["sid"] and len(data["sid"]) >= 40  # the database keeps only the token's hash
    for part in pw_hash.split("$"):
        if len(part) >= 8:
            assert part not in raw.value and part not in json.dumps(data)


def test_login_expires_server_side(world: World, client: FlaskClient, now: FakeNow) -> None:
    world.user("u", "auditor")
    assert login(client, "u") == 302
    assert client.get("/").status_code == 200
    now.advance(8 * 3600 + 1)  # session_lifetime_s, whatever the cookie says
    assert client.get("/").status_code == 302


def test_admin_disables_resets_and_changes_role(world: World, app: Flask, db: Database) -> None:
    world.user("boss", "admin")
    world.user("lan", "prosecutor")
    admin, lan, lan2 = app.test_client(), app.test_client(), app.test_client()
    assert login(admin, "boss") == 302 and login(lan, "lan") == 302 and login(lan2, "lan") == 302
    page = admin.get("/admin/users").get_data(as_text=True)
    assert 'data-user="lan"' in page
    # role: in force at the next request, the login kept
    assert lan.get("/admin/sites").status_code == 403
    assert post_form(admin, "/admin/users/lan/role", {"role": "it_staff"}, "/admin/users") == 302
    assert lan.get("/admin/sites").status_code == 200
    # disable: both logins end at once; the right password no longer opens one
    assert post_form(admin, "/admin/users/lan/disable", {}, "/admin/users") == 302
    assert lan.get("/").status_code == 302 and lan2.get("/").status_code == 302
    assert login(app.test_client(), "lan") == 401
    assert post_form(admin, "/admin/users/lan/disable", {}, "/admin/users") == 409
    assert post_form(admin, "/admin/users/lan/enable", {}, "/admin/users") == 302
    assert login(lan, "lan") == 302
    # reset: a generated password shown once, the logins end, the old password is gone
    resp = admin.post("/admin/users/lan/reset-password", data={"csrf_token": csrf_token(admin, "/admin/users")})
    assert resp.status_code == 200
    m = re.search(r'id="new-password">([^<]+)<', resp.get_data(as_text=True))
    assert m
    assert lan.get("/").status_code == 302
    assert login(app.test_client(), "lan") == 401
    assert login(lan, "lan", m.group(1)) == 302
    # an admin cannot lock themselves out
    assert post_form(admin, "/admin/users/boss/disable", {}, "/admin/users") == 409
    assert post_form(admin, "/admin/users/boss/role", {"role": "auditor"}, "/admin/users") == 409
    assert post_form(admin, "/admin/users/ghost/disable", {}, "/admin/users") == 404
    # a refused button answers on the users page, in the page's language (Vietnamese by default), the table kept;
    # a done one says so there
    resp = admin.post("/admin/users/boss/disable", data={"csrf_token": csrf_token(admin, "/admin/users")})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 409 and 'id="row-problem"' in page and 'data-user="lan"' in page
    assert i18n.translate("This conflicts with what is already recorded.", "vi") in page
    assert "cannot disable their own account" in page
    admin.post("/admin/users/lan/role", data={"role": "prosecutor", "csrf_token": csrf_token(admin, "/admin/users")})
    page = admin.get("/admin/users").get_data(as_text=True)
    assert i18n.translate("Role of {username} changed.", "vi", username="lan") in page
    acts = [(a, act, t) for a, act, t, _ in audit_rows(db, "user.")]
    assert acts == [("test", "user.add", "boss"), ("test", "user.add", "lan"), ("boss", "user.role", "lan"),
                    ("boss", "user.disable", "lan"), ("boss", "user.enable", "lan"),
                    ("boss", "user.password_reset", "lan"), ("boss", "user.role", "lan")]
    assert audit_rows(db, "user.disable")[0][3] == {"logins_ended": 2}
    # none of it for another role
    assert lan.post("/admin/users/boss/disable", data={"csrf_token": csrf_token(lan, "/")}).status_code == 403


def test_admin_adds_a_user_with_a_generated_password(world: World, app: Flask) -> None:
    world.user("boss", "admin")
    admin = app.test_client()
    assert login(admin, "boss") == 302
    resp = admin.post("/admin/users", data={"username": "minh", "display_name": "Minh", "role": "auditor",
                                            "csrf_token": csrf_token(admin, "/admin/users")})
    m = re.search(r'id="new-password">([^<]+)<', resp.get_data(as_text=True))
    assert resp.status_code == 200 and m
    assert login(app.test_client(), "minh", m.group(1)) == 302


def test_own_password_change_ends_the_other_logins(world: World, app: Flask, db: Database) -> None:
    world.user("lan", "prosecutor")
    here, there = app.test_client(), app.test_client()
    assert login(here, "lan") == 302 and login(there, "lan") == 302
    new = "một mật khẩu mới dài"
    assert post_form(here, "/account", {"current": "wrong-wrong-wrong", "new": new, "again": new},
                     "/account") == 400
    resp = here.post("/account", data={"current": PASSWORD, "new": new, "again": new,
                                       "csrf_token": csrf_token(here, "/account")})
    assert resp.status_code == 200 and 'id="password-changed"' in resp.get_data(as_text=True)
    assert here.get("/").status_code == 200  # this login goes on
    assert there.get("/").status_code == 302  # the other one ended
    assert login(app.test_client(), "lan") == 401 and login(app.test_client(), "lan", new) == 302
    [(actor, _, target, detail)] = audit_rows(db, "user.password_change")
    assert (actor, target, detail) == ("lan", "lan", {"logins_ended": 1})


def test_cli_disable_enable_reset_set_role(world: World, app: Flask, db: Database, config: WebConfig,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    world.user("lan", "prosecutor")
    lan = app.test_client()
    assert login(lan, "lan") == 302
    base = ["--database", config.database_url, "user"]
    assert main([*base, "disable", "lan"]) == 0
    assert lan.get("/").status_code == 302
    assert main([*base, "disable", "lan"]) == 1 and "already disabled" in capsys.readouterr().err
    assert main([*base, "enable", "lan"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("mật khẩu đặt lại dài\n"))
    assert main([*base, "reset-password", "lan", "--password-stdin"]) == 0
    assert login(app.test_client(), "lan") == 401
    assert login(lan, "lan", "mật khẩu đặt lại dài") == 302
    assert main([*base, "set-role", "lan", "auditor"]) == 0
    assert main([*base, "set-role", "ghost", "auditor"]) == 1 and "no user ghost" in capsys.readouterr().err
    assert main([*base, "list"]) == 0 and "lan\tauditor\tactive" in capsys.readouterr().out
    who = cli_actor()
    assert re.fullmatch(r"irms-web cli \(.+\)", who)
    assert [(a, act) for a, act, _, _ in audit_rows(db, "user.")][1:] == [
        (who, "user.disable"), (who, "user.enable"), (who, "user.password_reset"), (who, "user.role")]


# --- the throttle: per user and address, progressive, shared --------------------------------------------------


def from_addr(app: Flask, addr: str, **headers: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": addr, **{f"HTTP_{k.upper()}": v for k, v in headers.items()}})
    return client


def test_wrong_passwords_from_one_address_do_not_lock_out_the_user(world: World, app: Flask,
                                                                   now: FakeNow) -> None:
    world.user("victim", "prosecutor")
    attacker = from_addr(app, "203.0.113.9")
    for _ in range(5):
        assert login(attacker, "victim", "guess-guess-guess") == 401
    token = csrf_token(attacker)
    resp = attacker.post("/login", data={"username": "victim", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 429 and "try again in 30 s" in resp.get_data(as_text=True)
    # the user, from their own address, is not held back
    assert login(from_addr(app, "198.51.100.2"), "victim") == 302
    # the delay doubles with each further failure
    now.advance(31)
    assert login(attacker, "victim", "guess-guess-guess") == 401
    now.advance(31)
    resp = attacker.post("/login", data={"username": "victim", "password": "x" * 12, "csrf_token": token})
    assert resp.status_code == 429 and "try again in 29 s" in resp.get_data(as_text=True)
    now.advance(30)
    assert login(attacker, "victim") == 302  # the right password after the wait


def test_logins_refused_by_the_throttle_are_audited_once_per_failure_not_per_try(world: World, app: Flask,
                                                                                 now: FakeNow, db: Database) -> None:
    """A guesser held back keeps knocking: the audit shows that it did (who, from where, how long it still had to
    wait), but one entry per address between two counted failures, however often it knocks and whatever
    username it sprays, so hammering cannot flood the audit log."""
    world.user("victim", "prosecutor")
    attacker = from_addr(app, "203.0.113.9")
    for _ in range(5):
        assert login(attacker, "victim", "guess-guess-guess") == 401
    for name in ("victim", "victim", "victim"):
        assert login(attacker, name, "guess-guess-guess") == 429
    held = [r for r in audit_rows(db, "login.") if r[1] == "login.throttled"]
    assert held == [("victim", "login.throttled", "203.0.113.9", {"wait_s": 30})]
    # the next counted failure (after the wait) opens a new period: its first refusal is audited again
    now.advance(31)
    assert login(attacker, "victim", "guess-guess-guess") == 401
    for _ in range(3):
        assert login(attacker, "victim", "guess-guess-guess") == 429
    held = [r for r in audit_rows(db, "login.") if r[1] == "login.throttled"]
    assert [r[3] for r in held] == [{"wait_s": 30}, {"wait_s": 60}]
    # the user's own login from elsewhere is neither refused nor counted as a refusal
    assert login(from_addr(app, "198.51.100.2"), "victim") == 302
    assert len([r for r in audit_rows(db, "login.") if r[1] == "login.throttled"]) == 2


def test_a_sprayer_refused_by_address_is_audited_once_whatever_names_it_tries(world: World, app: Flask,
                                                                              db: Database) -> None:
    for i in range(20):
        world.user(f"u{i}", "auditor")
    sprayer = from_addr(app, "203.0.113.50")
    assert [login(sprayer, f"u{i}", "Password123!") for i in range(20)] == [401] * 20
    assert [login(sprayer, f"made-up-{i}", "Password123!") for i in range(50)] == [429] * 50
    held = [r for r in audit_rows(db, "login.") if r[1] == "login.throttled"]
    assert [(r[0], r[2]) for r in held] == [("made-up-0", "203.0.113.50")]
    with db.session() as s:  # what bounds it is kept no longer than the failures it follows
        assert s.execute(text("SELECT count(*) FROM login_refusals")).scalar() == 1


def test_password_spraying_from_one_address_is_slowed(world: World, app: Flask) -> None:
    for i in range(21):
        world.user(f"u{i}", "auditor")
    sprayer = from_addr(app, "203.0.113.50")
    statuses = [login(sprayer, f"u{i}", "Password123!") for i in range(21)]
    assert statuses == [401] * 20 + [429]
    assert login(from_addr(app, "198.51.100.3"), "u20") == 302


def test_x_forwarded_for_only_from_trusted_proxies(world: World, config: WebConfig, now: FakeNow,
                                                   db: Database) -> None:
    world.user("victim", "prosecutor")
    direct = create_app(config, clock=now, database=db)
    # an untrusted client cannot pick its address: its failures count against its own
    liar = from_addr(direct, "10.9.9.9", X_FORWARDED_FOR="198.51.100.2")
    for _ in range(5):
        assert login(liar, "victim", "guess-guess-guess") == 401
    assert login(from_addr(direct, "10.9.9.9", X_FORWARDED_FOR="192.0.2.77"), "victim") == 429
    assert login(from_addr(direct, "10.1.1.1"), "victim") == 302
    with db.session() as s:
        ips = set(s.execute(text("SELECT ip FROM login_failures")).scalars())
    assert ips == {"10.9.9.9"}
    # behind a trusted proxy, the address it forwards for is the client's (the nearest untrusted hop)
    proxied = create_app(config.model_copy(update={"trusted_proxies": ("127.0.0.1", "10.0.0.0/24")}), clock=now,
                         database=db)
    attacker = from_addr(proxied, "127.0.0.1", X_FORWARDED_FOR="198.51.100.2, 203.0.113.9, 10.0.0.5")
    for _ in range(5):
        assert login(attacker, "victim", "guess-guess-guess") == 401
    assert login(attacker, "victim") == 429
    assert login(from_addr(proxied, "127.0.0.1", X_FORWARDED_FOR="198.51.100.2"), "victim") == 302
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM login_failures WHERE ip = '203.0.113.9'")).scalar() == 5


def test_two_nodes_share_logins_and_the_throttle(world: World, config: WebConfig, now: FakeNow,
                                                 db: Database) -> None:
    world.user("lan", "prosecutor")
    a = create_app(config, clock=now, database=Database(config.database_url))
    b = create_app(config, clock=now, database=Database(config.database_url))
    try:
        on_a, on_b = a.test_client(), b.test_client()
        assert login(on_a, "lan") == 302
        copy_cookie(on_a, on_b)
        assert on_b.get("/").status_code == 200
        assert post_form(on_a, "/logout") == 302
        assert on_b.get("/").status_code == 302  # ended on A, refused on B at once
        for node in (a, b, a, b, a):
            assert login(from_addr(node, "203.0.113.9"), "lan", "guess-guess-guess") == 401
        assert login(from_addr(b, "203.0.113.9"), "lan") == 429
    finally:
        a.extensions["irms"].db.dispose()
        b.extensions["irms"].db.dispose()
