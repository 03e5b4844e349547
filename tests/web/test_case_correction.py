"""A case number mistyped at the station (issue 13's carried gap: a typo put the session outside its case's
scope). A prosecutor of the session's unit corrects it with a reason: the session then belongs to the right case
(the prosecutor assigned that case sees it, the one assigned the typo no longer does), a sync from the store does
not undo it, the signed header keeps what was typed and the page shows both; the audit log says who, when, why.

The recorded store's first session (tests/plugins/recording.py) is in HN-CA-01/P101, Hà Nội's unit, and was typed
as case 7/2026/HS; here the right number is 17/2026/HS.
"""

from __future__ import annotations

import json

from flask import Flask
from sqlalchemy import select

from tests.web.conftest import SessionsWorld, csrf_token
from tests.web.test_scoping import as_user, audit_rows
from web import recordings as R
from web.db import Database
from web.models import RecordingSession

TYPED, RIGHT = "7/2026/HS", "17/2026/HS"


def correct(client: object, sid: str, number: str, reason: str = "số vụ án nhập nhầm tại phòng hỏi cung") -> int:
    token = csrf_token(client, f"/sessions/{sid}")  # type: ignore[arg-type]
    return int(client.post(f"/sessions/{sid}/case-number",  # type: ignore[attr-defined]
                           data={"case_number": number, "reason": reason, "csrf_token": token}).status_code)


def test_a_mistyped_case_number_is_corrected_by_the_units_prosecutor(sessions_world: SessionsWorld, app: Flask,
                                                                    db: Database) -> None:
    w, sid = sessions_world.world, sessions_world.session_id
    w.unit("VKS-HUE")
    for name, case in (("ksv-right", RIGHT), ("ksv-typed", TYPED)):
        w.user(name, "prosecutor")
        w.assign(name, "VKS-HUE")
        w.assign_case(case, name)
    right, typed = as_user(app, "ksv-right"), as_user(app, "ksv-typed")
    assert right.get(f"/sessions/{sid}").status_code == 404  # the typo keeps the right case's prosecutor out
    assert typed.get(f"/sessions/{sid}").status_code == 200
    # Who sees it only through the case as typed may not move it; an auditor may not either.
    assert correct(typed, sid, RIGHT) == 403
    w.user("aud", "auditor")
    w.assign("aud", "VKS-HNI")
    assert correct(as_user(app, "aud"), sid, RIGHT) == 403
    # The unit's prosecutor: a reason is required, then the correction is made.
    pro = as_user(app, "prosecutor")
    assert correct(pro, sid, RIGHT, reason="") == 400
    assert correct(pro, sid, f"  {RIGHT} ") == 302
    assert right.get(f"/sessions/{sid}").status_code == 200
    assert right.get(f"/replay/{sid}/index.m3u8").status_code == 200
    assert typed.get(f"/sessions/{sid}").status_code == 404
    page = pro.get(f"/sessions/{sid}").get_data(as_text=True)
    assert f'<span id="case-number">{RIGHT}</span>' in page
    assert 'id="case-filed"' in page and f'<span class="code">{TYPED}</span>' in page
    assert correct(pro, sid, RIGHT) == 400  # already so
    # The audit log: who, the numbers, why; the custody table names the action without the numbers (auditors).
    entry = audit_rows(db, "session.case_corrected")[-1]
    assert (entry.actor, entry.target) == ("prosecutor", sid)
    assert json.loads(entry.detail) == {"from": TYPED, "to": RIGHT, "filed": TYPED,
                                        "reason": "số vụ án nhập nhầm tại phòng hỏi cung"}
    # A sync from the store reads the signed header again: the correction stands, what was typed is kept.
    with db.session() as s:
        R.sync_store(s, R.store_of(app.extensions["irms"].config), w.now())
        s.commit()
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        assert (row.case_number, row.case_number_filed, row.case_corrected) == (RIGHT, TYPED, True)
    # The search by case number finds it under the right number.
    assert sid in pro.get(f"/sessions/?case={RIGHT}").get_data(as_text=True)
    # Corrected back (a mistake of the correction): the session returns to the typed case; both are audited.
    assert correct(pro, sid, TYPED, reason="nhầm lần sửa trước") == 302
    assert typed.get(f"/sessions/{sid}").status_code == 200
    assert len(audit_rows(db, "session.case_corrected")) == 2


def test_a_correction_cannot_take_a_session_out_from_under_a_case_hold(sessions_world: SessionsWorld, app: Flask,
                                                                       db: Database) -> None:
    sid = sessions_world.session_id
    pro = as_user(app, "prosecutor")
    token = csrf_token(pro, f"/sessions/{sid}")
    assert pro.post(f"/sessions/{sid}/hold", data={"reason": "kháng cáo", "whole_case": "1",
                                                    "csrf_token": token}).status_code == 302
    assert correct(pro, sid, RIGHT) == 409
    with db.session() as s:
        assert s.scalars(select(RecordingSession.case_number).where(RecordingSession.session_id == sid)).one() == TYPED
    assert audit_rows(db, "session.case_corrected") == []
