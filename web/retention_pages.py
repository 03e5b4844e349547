"""Pages for retention, legal holds and disposal (web/retention.py does the work; web/scope.py decides who).

- /retention/ and its CSVs: sessions by retention status, holds in force, disposals done (prosecutors and
  auditors, their scope; personal data as on the session pages);
- /retention/policies: admins set the policies;
- /cases/outcome, /sessions/<id>/hold, /holds/<id>/lift: prosecutors, for the cases and sessions in scope;
- /disposals/: the queue; admins propose, two different people (admins, prosecutors in scope) approve, either
  stops one; each disposal's tombstone is downloaded there.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import IntegerField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, Optional

from web import recordings as R
from web import retention as RT
from web import scope
from web.auth import require_roles
from web.context import db_session, now_us, state
from web.errors import BadRequest, NotFound
from web.forms import CsrfForm
from web.models import CaseStatus, Disposal, LegalHold, RecordingSession, Role, Tombstone, Unit
from web.scope import Need

bp = Blueprint("retention", __name__)
REPORT_ROLES = scope.ROLES[Need.VIEW]
DISPOSAL_ROLES = (Role.PROSECUTOR.value, Role.AUDITOR.value, Role.ADMIN.value)
APPROVER_ROLES = (Role.PROSECUTOR.value, Role.ADMIN.value)


class OutcomeForm(CsrfForm):
    case_number = StringField(validators=[DataRequired(), Length(max=200)])
    status = StringField(validators=[AnyOf([c.value for c in CaseStatus])])
    date = StringField(validators=[DataRequired(), Length(max=40)])
    category = StringField(validators=[Optional(), Length(max=64)])


class HoldForm(CsrfForm):
    reason = StringField(validators=[DataRequired(), Length(max=2000)])
    whole_case = StringField(validators=[Optional(), AnyOf(["", "1"])])


class PolicyForm(CsrfForm):
    unit = StringField(validators=[Optional(), Length(max=64)])
    category = StringField(validators=[Optional(), Length(max=64)])
    anchor = StringField(validators=[AnyOf(["final", "recorded"])])
    years = IntegerField(validators=[Optional(), NumberRange(0, 1000)])
    days = IntegerField(validators=[Optional(), NumberRange(0, 1_000_000)])
    mode = StringField(validators=[AnyOf(["governance", "compliance", "GOVERNANCE", "COMPLIANCE"])])


class PlainForm(CsrfForm):
    pass


def parse_date(text: str, tz: str) -> int:
    """A date (YYYY-MM-DD: that day's start) or a date and time, in the server's time zone unless given."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"date {text!r}: give YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    return RT.us_of(when)


def _scoped_rows(s: Session) -> tuple[scope.Scope, list[RecordingSession]]:
    sc = scope.current(s)
    rows = list(s.scalars(select(RecordingSession).where(scope.session_filter(sc, Need.VIEW))
                          .order_by(RecordingSession.started_at_us.desc())))
    return sc, rows


def _personal(s: Session, sc: scope.Scope, rows: list[RecordingSession]) -> dict[str, bool]:
    units = scope.units_of(s, rows)
    return {r.session_id: scope.shows_personal(sc, units.get(r.session_id), r.case_number) for r in rows}


@dataclass(frozen=True)
class HoldLine:
    """A hold in force as a report shows it: the sessions it covers in the reader's scope; the case number only
    to whom may see it."""

    hold: LegalHold
    sessions: list[str]
    case_number: str


# --- reports -------------------------------------------------------------------------------------------------


class Report(TypedDict):
    """What the retention report (page and CSV) shows of the sessions in the reader's scope."""

    views: list[RT.View]
    personal: dict[str, bool]
    """Session id -> whether the reader may see its personal data (the case number)."""
    holds: list[HoldLine]
    disposals: list[Disposal]
    counts: dict[str, int]
    statuses: list[str]
    describe: Callable[[dict[str, Any]], str]


def _report_data(s: Session) -> Report:
    sc, rows = _scoped_rows(s)
    t = now_us()
    book = RT.Book.read(s)
    views = RT.views(s, rows, t, book)
    personal = _personal(s, sc, rows)
    ids = {r.session_id for r in rows}
    by_case: dict[str, list[str]] = {}
    case_personal: dict[str, bool] = {}
    for r in rows:
        if r.case_number:
            by_case.setdefault(r.case_number, []).append(r.session_id)
            case_personal[r.case_number] = case_personal.get(r.case_number, False) or personal[r.session_id]
    holds = [HoldLine(h, [h.session_id] if h.session_id else by_case[h.case_number],
                      h.case_number if case_personal.get(h.case_number) else "")
             for h in RT.holds_in_force(s) if h.session_id in ids or h.case_number in by_case]
    done = [d for d in s.scalars(select(Disposal).order_by(Disposal.id)) if d.session_id in ids]
    counts: dict[str, int] = {}
    for v in views:
        counts[v.status.value] = counts.get(v.status.value, 0) + 1
    return {"views": views, "personal": personal, "holds": holds, "disposals": done, "counts": counts,
            "statuses": [x.value for x in RT.RetentionStatus], "describe": RT.describe}


@bp.route("/retention/")
@require_roles(*REPORT_ROLES)
def report() -> ResponseReturnValue:
    return render_template("retention/report.html", **_report_data(db_session()))


def _iso(us: int | None) -> str:
    return RT.dt_of(us).isoformat().replace("+00:00", "Z") if us is not None else ""


@bp.route("/retention/<kind>.csv")
@require_roles(*REPORT_ROLES)
def report_csv(kind: str) -> ResponseReturnValue:
    if kind not in ("sessions", "holds", "disposals"):
        raise NotFound(f"no report {kind}")
    data = _report_data(db_session())
    out = io.StringIO()
    w = csv.writer(out)
    personal = data["personal"]
    if kind == "sessions":
        w.writerow(["session_id", "site", "room", "case_number", "status", "retain_until", "applied_until",
                    "policy"])
        for v in data["views"]:
            w.writerow([v.row.session_id, v.row.site, v.row.room,
                        v.row.case_number if personal[v.row.session_id] else "", v.status.value, _iso(v.until_us),
                        _iso(v.row.retain_until_us), RT.describe(v.policy) if v.policy else ""])
    elif kind == "holds":
        w.writerow(["hold", "session_id", "case_number", "placed_by", "placed_at"])
        for line in data["holds"]:
            for sid in line.sessions:
                w.writerow([line.hold.id, sid, line.case_number, line.hold.placed_by, _iso(line.hold.placed_at_us)])
    else:
        w.writerow(["disposal", "session_id", "state", "retain_until", "proposed_by", "first_approver",
                    "second_approver", "execute_after", "executed_at", "stopped_by", "stop_reason"])
        for d in data["disposals"]:
            w.writerow([d.id, d.session_id, d.state, _iso(d.retain_until_us), d.proposed_by, d.first_approver,
                        d.second_approver, _iso(d.execute_after_us), _iso(d.executed_at_us), d.stopped_by,
                        d.stop_reason if personal.get(d.session_id) else ""])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="retention-{kind}.csv"', "Cache-Control": "no-store"})


# --- policies (admins) ------------------------------------------------------------------------------------------


@bp.route("/retention/policies", methods=["POST"])
@require_roles(Role.ADMIN.value)
def add_policy() -> ResponseReturnValue:
    s = db_session()
    form = PolicyForm()
    form.require_valid()
    RT.add_policy(s, unit=(form.unit.data or "").strip() or None, category=form.category.data or "",
                  anchor=form.anchor.data or "", years=int(form.years.data or 0), days=int(form.days.data or 0),
                  mode=form.mode.data or "", actor=g.user.username, now_us=now_us())
    s.commit()
    return redirect(url_for("retention.policies"))


@bp.route("/retention/policies")
@require_roles(Role.ADMIN.value)
def policies() -> ResponseReturnValue:
    s = db_session()
    form = PolicyForm()
    from web.models import RetentionPolicy
    rows = [RT.policy_json(s, p) for p in s.scalars(select(RetentionPolicy).order_by(RetentionPolicy.id))]
    units = s.scalars(select(Unit.code).order_by(Unit.code)).all()
    return render_template("retention/policies.html", policies=rows, form=form, units=units, describe=RT.describe)


# --- case outcome and holds (prosecutors in scope) -----------------------------------------------------------


@bp.route("/cases/outcome", methods=["POST"])
@require_roles(*scope.ROLES[Need.CONTENT])
def outcome() -> ResponseReturnValue:
    s = db_session()
    form = OutcomeForm()
    form.require_valid()
    case_number = (form.case_number.data or "").strip()
    if not RT.case_allowed(s, scope.current(s), case_number):
        raise NotFound(f"no case {case_number}")
    RT.record_outcome(s, case_number=case_number, status=form.status.data or "",
                      at_us=parse_date(form.date.data or "", state().config.timezone), category=form.category.data,
                      actor=g.user.username, now_us=now_us())
    s.commit()
    return redirect(request.referrer or url_for("retention.report"))


@bp.route("/sessions/<session_id>/hold", methods=["POST"])
@require_roles(*scope.ROLES[Need.CONTENT])
def hold(session_id: str) -> ResponseReturnValue:
    s = db_session()
    row = scope.session_for(s, session_id, Need.CONTENT).row
    form = HoldForm()
    form.require_valid()
    if form.whole_case.data == "1" and not row.case_number:
        raise BadRequest(f"session {session_id} names no case")
    RT.place_hold(s, R.store_of(state().config), session_id="" if form.whole_case.data == "1" else session_id,
                  case_number=row.case_number if form.whole_case.data == "1" else "", reason=form.reason.data or "",
                  actor=g.user.username, now_us=now_us())
    s.commit()
    return redirect(url_for("sessions.detail", session_id=session_id))


@bp.route("/holds/<int:hold_id>/lift", methods=["POST"])
@require_roles(*scope.ROLES[Need.CONTENT])
def lift(hold_id: int) -> ResponseReturnValue:
    s = db_session()
    row = s.get(LegalHold, hold_id)
    if row is None or not RT.hold_allowed(s, scope.current(s), row):
        raise NotFound(f"no hold {hold_id}")
    PlainForm().require_valid()
    RT.lift_hold(s, R.store_of(state().config), row, actor=g.user.username, now_us=now_us())
    s.commit()
    return redirect(request.referrer or url_for("retention.report"))


# --- disposals ---------------------------------------------------------------------------------------------------


def _disposal_allowed(s: Session, d: Disposal, sc: scope.Scope, need: Need) -> bool:
    if sc.role == Role.ADMIN.value:
        return True
    row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == d.session_id)).first()
    return row is not None and scope.allows(sc, need, scope.unit_of(s, row), row.case_number)


def _disposal(s: Session, disposal_id: int, need: Need) -> Disposal:
    d = s.get(Disposal, disposal_id)
    if d is None or not _disposal_allowed(s, d, scope.current(s), need):
        raise NotFound(f"no disposal {disposal_id}")
    return d


@bp.route("/disposals/")
@require_roles(*DISPOSAL_ROLES)
def disposals() -> ResponseReturnValue:
    s = db_session()
    sc = scope.current(s)
    rows = [d for d in s.scalars(select(Disposal).order_by(Disposal.id.desc()))
            if _disposal_allowed(s, d, sc, Need.VIEW)]
    return render_template("retention/disposals.html", disposals=rows, undo_days=RT.UNDO_DAYS,
                           can_propose=sc.role == Role.ADMIN.value, can_approve=sc.role in APPROVER_ROLES,
                           form=PlainForm(), user=g.user.username)


@bp.route("/disposals/propose", methods=["POST"])
@require_roles(Role.ADMIN.value)
def propose() -> ResponseReturnValue:
    s = db_session()
    PlainForm().require_valid()
    RT.propose(s, actor=g.user.username, now_us=now_us())
    s.commit()
    return redirect(url_for("retention.disposals"))


@bp.route("/disposals/<int:disposal_id>/approve", methods=["POST"])
@require_roles(*APPROVER_ROLES)
def approve(disposal_id: int) -> ResponseReturnValue:
    s = db_session()
    d = _disposal(s, disposal_id, Need.CONTENT)
    PlainForm().require_valid()
    try:
        RT.approve(s, d, actor=g.user.username, now_us=now_us())
    finally:
        s.commit()  # a disposal found no longer due is stopped, and stays stopped
    return redirect(url_for("retention.disposals"))


@bp.route("/disposals/<int:disposal_id>/stop", methods=["POST"])
@require_roles(*APPROVER_ROLES)
def stop(disposal_id: int) -> ResponseReturnValue:
    s = db_session()
    d = _disposal(s, disposal_id, Need.CONTENT)
    PlainForm().require_valid()
    RT.stop(s, d, actor=g.user.username, reason="stopped by hand", now_us=now_us())
    s.commit()
    return redirect(url_for("retention.disposals"))


@bp.route("/disposals/<int:disposal_id>/tombstone.json")
@require_roles(*DISPOSAL_ROLES)
def tombstone(disposal_id: int) -> ResponseReturnValue:
    s = db_session()
    d = _disposal(s, disposal_id, Need.VIEW)
    row = s.scalars(select(Tombstone).where(Tombstone.disposal_id == d.id)).first()
    if row is None:
        raise NotFound(f"disposal {disposal_id} has no tombstone (not executed)")
    return Response(row.document, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="tombstone-{d.session_id}.json"'})
