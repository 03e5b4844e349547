"""Every route of the app's url_map x every principal (role x in scope / out of scope, outside parties with a live,
an expired and a revoked share) against a table of expected answers written from the rules (docs/web.md "Roles
and scopes"), not read from the code under test. A route the table does not name fails the test: a new route
must be given its row.

The session asked for is the recorded store's first one (HN-CA-01/P101, case 7/2026/HS), in Hà Nội's unit.
Principals: `prosecutor` and `auditor` are assigned to Hà Nội (in scope); `prosecutor-out` and `auditor-out` to
Huế (out of scope); `prosecutor-case` to Huế with case 7/2026/HS assigned by name; `investigator`, `it-staff`,
`admin` have no unit; `anon` is not logged in; `party-live`, `party-expired`, `party-revoked` are anonymous
browsers that opened a share of the session with its access code (the expired one while it was still open).
"""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.web.conftest import PASSWORD, SessionsWorld, csrf_token, login
from tests.web.test_scoping import PERSONAL
from tests.web.test_security import FORMS

P_IN, P_OUT, P_CASE = "prosecutor", "prosecutor-out", "prosecutor-case"
A_IN, A_OUT = "auditor", "auditor-out"
INV, IT, ADM = "investigator", "it-staff", "admin"
ANON, S_LIVE, S_EXP, S_REV = "anon", "party-live", "party-expired", "party-revoked"
USERS = (P_IN, P_OUT, P_CASE, A_IN, A_OUT, INV, IT, ADM)
PARTIES = (S_LIVE, S_EXP, S_REV)
PRINCIPALS = (*USERS, ANON, *PARTIES)
NOT_LOGGED_IN = (ANON, *PARTIES)


def row(users: int, *, page: bool = True, **by: int) -> dict[str, int]:
    """Expected status per principal: `users` for every logged-in user unless named in `by` (underscores for
    dashes); not logged in: 302 to the login page (pages) or 401 (JSON)."""
    out = {u: users for u in USERS} | {p: 302 if page else 401 for p in NOT_LOGGED_IN}
    out.update({k.replace("_", "-"): v for k, v in by.items()})
    return out


def same(status: int) -> dict[str, int]:
    return {p: status for p in PRINCIPALS}


CONTENT = row(403, prosecutor=200, prosecutor_case=200, prosecutor_out=404)
CONTENT_POST = row(403, prosecutor=302, prosecutor_case=302, prosecutor_out=404)
VIEW = row(403, prosecutor=200, prosecutor_case=200, auditor=200, prosecutor_out=404, auditor_out=404)
SHARED = same(403) | {S_LIVE: 200}
ADMIN_ONLY_POST = row(403, admin=302)
OWN_JOB = row(403, prosecutor=200, prosecutor_case=404, prosecutor_out=404)
"""A sealed copy's job: only the prosecutor who asked for it (`prosecutor`), while the session is in their scope."""

EXPECTED: dict[str, dict[str, int]] = {
    "coverage.dashboard": row(200),
    "rooms.province": row(200),  # the drill-down under the dashboard: equipment health, no content
    "rooms.site": row(200),
    "rooms.room": row(200),
    "rooms.failing": row(200),
    "rooms.station": row(403, admin=200, it_staff=200, auditor=200, auditor_out=200),
    "admin.audit_log": row(403, admin=200, auditor=200, auditor_out=200),
    "admin.audit_witness": row(403, admin=200, auditor=200, auditor_out=200),
    "admin.sites": row(403, admin=200, it_staff=200),
    "admin.stations": row(403, admin=200, it_staff=200),
    "admin.add_site": ADMIN_ONLY_POST,
    "admin.add_room": ADMIN_ONLY_POST,
    "admin.issue_code": row(403, admin=200, it_staff=200),
    "admin.revoke": row(403, admin=302, it_staff=302),
    "alerts.page": row(403, admin=200, it_staff=200),
    "admin.users": row(403, admin=200),
    "admin.add_user": row(403, admin=200),  # the generated password, shown once
    "admin.disable_user": row(403, admin=302),
    "admin.enable_user": row(403, admin=302),
    "admin.reset_password": row(403, admin=200),
    "admin.set_role": row(403, admin=302),
    "auth.account": row(200),
    "auth.second_factor": same(302),  # no login owes a code here: on to the dashboard, or the login form
    "auth.enrol": row(200),  # any user may enrol (the roles that must, at their first login)
    "auth.enrol_confirm": row(400),  # a wrong code
    "admin.reset_two_factor": row(403, admin=409),  # allowed; `spare` has no second factor to reset
    "alerts.ack": row(403, admin=404, it_staff=404),  # allowed; no such alert here
    "admin.units": row(403, admin=200),
    "admin.add_unit": ADMIN_ONLY_POST,
    "admin.place": ADMIN_ONLY_POST,
    "admin.members": ADMIN_ONLY_POST,
    "admin.cases": ADMIN_ONLY_POST,
    "api.coverage": row(200, page=False),
    "api.custodian_public": same(200),
    "api.enroll": same(400),  # a body without a code
    "api.session_events": same(401),  # unsigned
    "api.metrics": same(200),  # loopback, no token configured
    "api.witness": row(403, page=False, prosecutor=200, prosecutor_case=200, auditor=200, admin=200,
                       prosecutor_out=404, auditor_out=404),
    "auth.login": same(200),
    "auth.language": same(302),
    "auth.logout": same(302),
    "sessions.index": row(403, prosecutor=200, prosecutor_out=200, prosecutor_case=200, auditor=200,
                          auditor_out=200),
    "sessions.detail": VIEW,
    "sessions.annex": CONTENT,
    "sessions.correct_case": row(403, prosecutor=302, prosecutor_out=404),  # the unit's prosecutor only
    "exports.create": CONTENT_POST,
    "exports.index": row(403, prosecutor=200, prosecutor_out=200, prosecutor_case=200),
    "exports.job": OWN_JOB,
    "exports.progress": OWN_JOB,
    "exports.download": OWN_JOB,
    "replay.page": CONTENT,
    "replay.playlist": CONTENT,
    "replay.segment": CONTENT,
    "replay.segments": CONTENT,
    "live.page": CONTENT,
    "live.playlist": CONTENT,
    "live.markers": CONTENT,
    "live.add_marker": row(403, prosecutor=201, prosecutor_case=201, prosecutor_out=404),
    "shares.add": row(403, prosecutor=201, prosecutor_case=201, prosecutor_out=404),
    "shares.receipt": CONTENT,
    "shares.revoke": CONTENT_POST,
    "shares.unlock": same(404) | {S_LIVE: 302, S_EXP: 403, S_REV: 403},  # POST: one's own code, else a wrong one
    "shares.shared": SHARED,
    "shares.playlist": SHARED,
    "shares.markers": SHARED,
    "shares.segment": SHARED,
    "shares.segments": SHARED,
    "shares.copy": SHARED,
    "static": same(200),
    "retention.report": row(403, prosecutor=200, prosecutor_out=200, prosecutor_case=200, auditor=200,
                            auditor_out=200),
    "retention.report_csv": row(403, prosecutor=200, prosecutor_out=200, prosecutor_case=200, auditor=200,
                                auditor_out=200),
    "retention.policies": row(403, admin=200),
    "retention.add_policy": ADMIN_ONLY_POST,
    "retention.outcome": CONTENT_POST,
    "retention.hold": CONTENT_POST,
    "retention.lift": row(403, prosecutor=404, prosecutor_case=404, prosecutor_out=404),  # allowed; no such hold
    "retention.disposals": row(403, prosecutor=200, prosecutor_out=200, prosecutor_case=200, auditor=200,
                               auditor_out=200, admin=200),
    "retention.propose": ADMIN_ONLY_POST,
    "retention.approve": row(403, admin=404, prosecutor=404, prosecutor_case=404, prosecutor_out=404),
    "retention.stop": row(403, admin=404, prosecutor=404, prosecutor_case=404, prosecutor_out=404),
    "retention.tombstone": row(403, admin=404, prosecutor=404, prosecutor_case=404, prosecutor_out=404,
                               auditor=404, auditor_out=404),
}
LISTED = {P_IN: True, P_CASE: True, A_IN: True, P_OUT: False, A_OUT: False}
"""Whether the session is in the principal's session list (sessions.index answered 200)."""

MORE_FORMS: dict[str, dict[str, Any]] = {
    "admin.add_unit": {"code": "VKS-DNG", "name": "VKS Đà Nẵng", "kind": "province", "parent": "VN"},
    "admin.place": {"site": "HUE-NTG", "unit": "VKS-HUE"},
    "admin.members": {"username": "investigator", "unit": "VKS-HUE", "action": "add"},
    "admin.cases": {"case_number": "9/2026/HS", "username": "prosecutor", "action": "add"},
    "shares.add": {"party": "Toà án", "party_kind": "court", "allow": "replay", "days": 2},
    "live.add_marker": {"label": "lời khai bắt đầu"},
    "exports.create": {"label": "case-file"},
    "auth.login": {"username": "", "password": ""},
    "auth.second_factor": {"code": "123456"},
    "auth.enrol_confirm": {"code": "000000"},
    "retention.add_policy": {"unit": "VKS-HNI", "anchor": "final", "years": 10, "days": 0, "mode": "compliance"},
    "retention.outcome": {"case_number": "7/2026/HS", "status": "judgment", "date": "2026-12-01"},
    "retention.hold": {"reason": "kháng cáo"},
    "sessions.correct_case": {"case_number": "17/2026/HS", "reason": "nhập nhầm"},
    "auth.language": {"language": "vi"},
    "admin.add_user": {"username": "new-user", "display_name": "New", "role": "auditor"},
    "admin.set_role": {"role": "auditor"},
    "auth.account": {"current": PASSWORD, "new": "a-new-password-2027", "again": "a-new-password-2027"},
}


@pytest.fixture
def setting(sessions_world: SessionsWorld, app: Flask) -> dict[str, Any]:
    """The principals' units and case, a station to revoke, and the shares: (code, id) per party, the throwaway
    share the revoke route is tried on, and the live share the other share routes name."""
    w = sessions_world.world
    w.enroll("HN-TTG", "P02", station_id="st-x")
    w.user("spare", "investigator")  # the user the admin's user routes act on
    w.unit("VKS-HUE")
    for name, role in ((P_OUT, "prosecutor"), (P_CASE, "prosecutor"), (A_OUT, "auditor")):
        w.user(name, role)
        w.assign(name, "VKS-HUE")
    w.assign_case("7/2026/HS", P_CASE)
    sid = sessions_world.session_id
    pro = app.test_client()
    assert login(pro, P_IN) == 302
    assert pro.get(f"/sessions/{sid}").status_code == 200  # verified

    def share(days: int) -> tuple[str, int]:
        data = {"party": "Luật sư", "party_kind": "defence_counsel", "allow": "replay+export", "days": days,
                "csrf_token": csrf_token(pro, f"/sessions/{sid}")}
        page = pro.post(f"/sessions/{sid}/shares", data=data).get_data(as_text=True)
        code = re.search(r'/shared/#([^"]+)"', page)
        number = re.search(r'id="share-id">(\d+)<', page)
        assert code and number, page[:500]
        return code.group(1), int(number.group(1))

    parties: dict[str, FlaskClient] = {}
    codes: dict[str, tuple[str, int]] = {}

    def unlock(name: str, days: int) -> None:
        codes[name] = share(days)
        client = app.test_client()
        resp = client.post("/shared/", data={"code": codes[name][0], "csrf_token": csrf_token(client, "/shared/")})
        assert resp.status_code == 302
        parties[name] = client

    unlock(S_EXP, 1)
    unlock(S_REV, 30)
    assert pro.post(f"/sessions/{sid}/shares/{codes[S_REV][1]}/revoke",
                    data={"csrf_token": csrf_token(pro, f"/sessions/{sid}")}).status_code == 302
    w.now.advance(2 * 86400)
    assert login(pro, P_IN) == 302  # two days on, the first login has ended (session_lifetime_s)
    unlock(S_LIVE, 30)
    throwaway = share(30)[1]
    from web.models import RecordingSession
    with w.db.session() as s:
        started = s.scalars(select(RecordingSession.started_at_us).where(RecordingSession.session_id == sid)).one()
    from tests.web.test_sessions import export_via_job
    job, progress = export_via_job(pro, sid, "case-file")
    assert progress["state"] == "done", progress
    return {"sid": sid, "parties": parties, "codes": codes, "throwaway": throwaway, "started_us": started,
            "job": job}


def urls(app: Flask, endpoint: str, principal: str, st: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, url) of every way this test calls `endpoint`, built from its url_map rules."""
    share_id = st["codes"][principal][1] if principal in PARTIES else st["codes"][S_LIVE][1]
    choices: dict[str, tuple[Any, ...]] = {
        "session_id": (st["sid"],), "label": ("case-file", "procuracy-file"), "idx": (0,), "first": (1,),
        "last": (2,), "station_id": ("st-x",), "filename": ("style.css",), "share_id": (share_id,),
        "alert_id": (999_999,), "hold_id": (999_999,), "disposal_id": (999_999,), "kind": ("sessions", "holds",
                                                                                          "disposals"),
        "username": ("spare",), "province": ("HNI",), "site": ("HN-TTG",), "room": ("P01",),
        "job_id": (st["job"],)}
    if endpoint == "shares.revoke":
        choices["share_id"] = (st["throwaway"],)
    adapter = app.url_map.bind("localhost")
    out = []
    for rule in app.url_map.iter_rules(endpoint):
        unknown = sorted(a for a in rule.arguments if a not in choices)
        assert not unknown, f"route {rule.rule}: give this test values for {unknown}"
        names = sorted(rule.arguments)
        for combo in itertools.product(*(choices[a] for a in names)):
            url = adapter.build(endpoint, dict(zip(names, combo, strict=True)))
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                if endpoint in ("auth.login", "shares.unlock") and method == "GET":
                    continue  # the form itself: answered 200 to everyone, checked below once
                out.append((method, url))
    return out


def call(client: FlaskClient, method: str, url: str, endpoint: str, principal: str, st: dict[str, Any]) -> TestResponse:
    if method == "GET":
        return client.get(url)
    if endpoint.startswith("api."):
        return client.post(url, json={})
    data: dict[str, Any] = {**FORMS.get(url, {}), **MORE_FORMS.get(endpoint, {}),
                            "csrf_token": csrf_token(client, "/login")}
    if endpoint == "admin.audit_witness":
        data["heads"] = (io.BytesIO(b"[]"), "heads.json")
    if endpoint == "live.add_marker":
        data["at_us"] = str(st["started_us"] + 1_000_000)
    if endpoint == "shares.unlock":
        data["code"] = st["codes"][principal][0] if principal in PARTIES else "not-a-code"
    return client.post(url, data=data)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_route_for_every_principal(setting: dict[str, Any], app: Flask, principal: str) -> None:
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    assert endpoints == set(EXPECTED), f"routes without a row: {sorted(endpoints - set(EXPECTED))}; " \
                                       f"rows without a route: {sorted(set(EXPECTED) - endpoints)}"
    if principal in PARTIES:
        client = setting["parties"][principal]
    else:
        client = app.test_client()
        if principal != ANON:
            assert login(client, principal) == 302
    assert client.get("/login").status_code == 200 and client.get("/shared/").status_code == 200
    checks = 0
    # Logging out last: it ends what the others need.
    for endpoint in sorted(EXPECTED, key=lambda e: (e == "auth.logout", e)):
        for method, url in urls(app, endpoint, principal, setting):
            resp = call(client, method, url, endpoint, principal, setting)
            want = EXPECTED[endpoint][principal]
            assert resp.status_code == want, (principal, method, url, resp.status_code, want,
                                              resp.get_data(as_text=True)[:300])
            if want == 302 and endpoint not in ("auth.language", "auth.logout", "shares.unlock") and \
                    principal in NOT_LOGGED_IN:
                assert resp.headers["Location"].startswith("/login"), (principal, url)
            if principal in (A_IN, A_OUT):
                body = resp.get_data(as_text=True)
                leaked = [w for w in PERSONAL if w in body]
                assert not leaked, (principal, url, leaked)
            if endpoint == "sessions.index" and want == 200:
                assert (setting["sid"] in resp.get_data(as_text=True)) == LISTED[principal], (principal, url)
            checks += 1
    assert checks >= 40
