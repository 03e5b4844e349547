"""LDAP login (web/ldap_login.py) against a real slapd on loopback (tests/plugins/ldap.py): the directory's password
for users whose auth_source is ldap, the DN from a template or from a search (Active Directory style); role, units
and enabled stay in IRMS; a directory away is one clear line and local accounts still log in."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from sqlalchemy import select

from tests.plugins.ldap import SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Directory
from tests.web.conftest import PASSWORD, World, csrf_token, login
from tests.web.test_accounts import audit_rows, post_form
from web import ldap_login
from web.cli import main
from web.config import WebConfig
from web.db import Database
from web.models import User
from web.users import add_user

DIR_PASSWORD = "mật khẩu thư mục 2027"


def use_directory(app: Flask, **settings: object) -> WebConfig:
    st = app.extensions["irms"]
    st.config = st.config.model_copy(update=settings)
    return st.config


def ldap_user(world: World, username: str, role: str) -> None:
    with world.db.session() as s:
        add_user(s, username=username, display_name=username, role=role, password="", actor="test",
                 now_us=world.now(), auth_source="ldap")


def test_template_bind_with_the_directory_password(world: World, app: Flask, directory: Directory,
                                                   db: Database) -> None:
    directory.add_person("lan", DIR_PASSWORD)
    use_directory(app, ldap_url=directory.url, ldap_user_dn_template=f"uid={{username}},{directory.people}")
    ldap_user(world, "lan", "prosecutor")
    world.unit("VKS-HNI")
    world.assign("lan", "VKS-HNI")
    c = app.test_client()
    assert login(c, "lan", "wrong directory password") == 401
    assert login(c, "lan", "") == 200  # the form again
    cfg = app.extensions["irms"].config
    assert ldap_login.password_ok(cfg, "lan", "") is False  # never an empty (that is, anonymous) bind
    assert login(c, "lan", DIR_PASSWORD) == 302
    assert c.get("/sessions/").status_code == 200  # the role is IRMS's
    assert "Toàn quốc" not in c.get("/account").get_data(as_text=True)
    with db.session() as s:
        assert s.scalars(select(User.password_hash).where(User.username == "lan")).one() == "!ldap"
    assert [a[1] for a in audit_rows(db, "login")] == ["login.failed", "login"]
    assert audit_rows(db, "login")[1][3] == {"source": "ldap"}
    # The password lives in the directory: no change or reset here.
    assert post_form(c, "/account", {"current": DIR_PASSWORD, "new": "another-long-one", "again": "another-long-one"},
                     page="/account") == 400


def test_search_for_the_dn_as_active_directory(world: World, app: Flask, directory: Directory) -> None:
    directory.add_person("nguyen.van.a", DIR_PASSWORD, account="anv")
    directory.add_person("other", "not the same password", account="someone")
    use_directory(app, ldap_url=directory.url, ldap_search_base=SUFFIX, ldap_search_filter="(description={username})",
                  ldap_bind_dn=SERVICE_DN, ldap_bind_password=SERVICE_PASSWORD)
    ldap_user(world, "anv", "auditor")
    assert login(app.test_client(), "anv", DIR_PASSWORD) == 302
    assert login(app.test_client(), "anv", "not the same password") == 401
    cfg = app.extensions["irms"].config
    assert ldap_login.password_ok(cfg, "*", DIR_PASSWORD) is False  # escaped: no wildcard search
    assert ldap_login.password_ok(cfg, "anv)(description=*", DIR_PASSWORD) is False
    # A wrong service account is the directory's fault, said in one line.
    use_directory(app, ldap_bind_password="wrong")
    c = app.test_client()
    resp = c.post("/login", data={"username": "anv", "password": DIR_PASSWORD, "csrf_token": csrf_token(c)})
    assert resp.status_code == 503 and "refuses the service account" in resp.get_data(as_text=True)


def test_disabled_in_irms_is_refused_whatever_the_directory_says(world: World, app: Flask, directory: Directory,
                                                                 config: WebConfig, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory.add_person("lan", DIR_PASSWORD)
    use_directory(app, ldap_url=directory.url, ldap_user_dn_template=f"uid={{username}},{directory.people}")
    ldap_user(world, "lan", "investigator")
    c = app.test_client()
    assert login(c, "lan", DIR_PASSWORD) == 302
    assert main(["--database", config.database_url, "user", "disable", "lan"]) == 0
    assert c.get("/").status_code == 302  # the open login ended
    assert login(app.test_client(), "lan", DIR_PASSWORD) == 401
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-local-password\n"))
    assert main(["--database", config.database_url, "user", "reset-password", "lan",
                 "--password-stdin"]) == 2  # BadRequest
    assert "change the password there" in capsys.readouterr().err


def test_cli_adds_a_directory_user(world: World, app: Flask, directory: Directory, config: WebConfig,
                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    directory.add_person("hoa", DIR_PASSWORD)
    use_directory(app, ldap_url=directory.url, ldap_user_dn_template=f"uid={{username}},{directory.people}")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["--database", config.database_url, "user", "add", "hoa", "--role", "auditor", "--ldap"]) == 0
    assert "LDAP password" in capsys.readouterr().out
    assert login(app.test_client(), "hoa", DIR_PASSWORD) == 302


def test_directory_away_one_clear_line_local_accounts_still_work(world: World, app: Flask, directory: Directory,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    directory.add_person("lan", DIR_PASSWORD)
    use_directory(app, ldap_url=directory.url, ldap_user_dn_template=f"uid={{username}},{directory.people}",
                  ldap_timeout_s=2)
    ldap_user(world, "lan", "prosecutor")
    world.user("local.admin", "admin")
    assert login(app.test_client(), "lan", DIR_PASSWORD) == 302
    directory.stop()
    c = app.test_client()
    resp = c.post("/login", data={"username": "lan", "password": DIR_PASSWORD, "csrf_token": csrf_token(c)})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 503
    assert f"the LDAP directory {directory.url} does not answer" in body and "local accounts still log in" in body
    assert DIR_PASSWORD not in caplog.text
    assert [r.getMessage() for r in caplog.records if "LDAP" in r.getMessage()] == [
        f"LDAP login of 'lan': the LDAP directory {directory.url} does not answer (LDAPSocketOpenError); "
        "local accounts still log in"]
    assert login(app.test_client(), "local.admin", PASSWORD) == 302
