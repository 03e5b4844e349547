"""The prosecutor's pages: find sessions, see each one's verification and timeline, the annex, exports.

Who may do what (R14, and docs/web.md "Roles and scopes"), decided by web/scope.py:
- prosecutors: everything here and in replay (view, play, annex, export, share) for the sessions in
  their scope (their units and the units below, and the cases assigned to them);
- auditors: the list and the session page (verification result, timeline, custody: what they
  need to supervise that recordings are complete) in their scope, without personal data unless
  their unit assignment grants it; never the picture, sound, annex or exports;
- investigators, IT staff and admins: refused (403) at every route here and in replay.
A session outside the reader's scope is answered 404, as a missing one.
Every session view, annex and export is an audit entry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from verifier.annex import build_annex, load_session_documents
from verifier.export import export_zip
from web import audit, i18n, scope
from web import recordings as R
from web.auth import require_roles
from web.context import db_session, lang, now_us, state
from web.errors import BadRequest, Conflict, Forbidden
from web.forms import CsrfForm
from web.models import AuditEntry, RecordingSession, SessionStatus, Share
from web.scope import Need

bp = Blueprint("sessions", __name__, url_prefix="/sessions")
VIEW_ROLES = scope.ROLES[Need.VIEW]
CONTENT_ROLES = scope.ROLES[Need.CONTENT]
CUSTODY_ACTIONS = ("session.view", "session.case_corrected", "session.replay", "session.live", "session.marker",
                   "session.annex",
                   "session.export_requested", "session.export", "session.export_failed", "session.export_download",
                   "custodian.key_use", "share.create", "share.revoke", "share.open",
                   "share.replay", "share.export")
EXPORT_LABELS = ("case-file", "procuracy-file")


def _local_day_us(text: str, tz: str, days_after: int = 0) -> int | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            day = dt.datetime.strptime(text.strip(), fmt)
            break
        except ValueError:
            continue
    else:
        raise BadRequest(f"date {text[:40]!r}: use dd/mm/yyyy")
    if not 1970 <= day.year <= 9998:
        raise BadRequest(f"date {text[:40]!r}: the year must be between 1970 and 9998")
    local = day.replace(tzinfo=ZoneInfo(tz)) + dt.timedelta(days=days_after)
    return int(local.timestamp() * 1_000_000)


PER_PAGE = 20
"""Cases (groups) on one page of the sessions list."""


def _page_number(text: str) -> int:
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise BadRequest(f"page {text[:20]!r}: a number from 1")
    return int(text)


@bp.route("/")
@require_roles(*VIEW_ROLES)
def index() -> ResponseReturnValue:
    """Sessions grouped by case (newest or oldest first), paged, searched by case number, suspect, interrogator,
    room and date; personal-data searches only among the sessions whose personal data the reader may see."""
    cfg = state().config
    args = request.args
    q = R.Query(case_number=args.get("case", "").strip()[:200], suspect=args.get("suspect", "").strip()[:300],
                interrogator=args.get("interrogator", "").strip()[:300],
                room=args.get("room", "").strip()[:130], from_us=_local_day_us(args.get("from", ""), cfg.timezone),
                to_us=_local_day_us(args.get("to", ""), cfg.timezone, days_after=1))
    sort = args.get("sort", "newest")
    if sort not in ("newest", "oldest"):
        raise BadRequest(f"sort {sort[:20]!r}: newest or oldest")
    page = _page_number(args.get("page", ""))
    s = db_session()
    sc = scope.current(s)
    personal_sql = scope.personal_filter(sc)
    where = [scope.session_filter(sc)] + ([personal_sql] if q.case_number or q.suspect or q.interrogator else [])
    groups, total = R.search_grouped(s, q, where=where, personal=personal_sql, newest_first=sort == "newest",
                                     page=page, per_page=PER_PAGE)
    rows = [r for grp in groups for r in grp.sessions]
    units = scope.units_of(s, rows)
    personal = {r.session_id for r in rows if scope.shows_personal(sc, units.get(r.session_id), r.case_number)}
    # Sessions the stations reported ended are verified here (a few per view, newest first), so the
    # list says "verified" without waiting for `irms-web sessions sync --verify` to run.
    pending = [r for r in rows if r.status == SessionStatus.ENDED.value and r.verification != "verified"]
    for row in pending[:cfg.verify_on_list]:
        R.ensure_verified(s, cfg, row, now_us())
    pages = max(1, -(-total // PER_PAGE))
    keep = {k: v for k, v in args.items() if k != "page" and v}
    return render_template("sessions/list.html", groups=groups, q=args, failed_rules=R.failed_rules,
                           personal=personal, may_search_personal=scope.may_search_personal(sc), sort=sort,
                           page=page, pages=pages, total=total, keep=keep,
                           interrogators_of=lambda r: ", ".join(json.loads(r.interrogators or "[]")))


def _audit(action: str, session_id: str, **detail: object) -> None:
    s = db_session()
    audit.append(s, at_us=now_us(), actor=g.user.username, action=action, target=session_id, detail=dict(detail))
    s.commit()


WITHHELD = "…"


@bp.route("/<session_id>")
@require_roles(*VIEW_ROLES)
def detail(session_id: str) -> ResponseReturnValue:
    cfg = state().config
    s = db_session()
    seen = scope.session_for(s, session_id, Need.VIEW)
    row, personal = seen.row, seen.personal
    t = now_us()
    if row.disposed_at_us is None:  # a disposed session's objects are gone: its last verification stands
        R.ensure_verified(s, cfg, row, t)
    _audit("session.view", session_id, verification=row.verification)
    segs = [R.Seg(x.idx, x.run, x.start_us, x.duration_us) for x in R.segments_of(s, row)]
    manifest = json.loads(row.manifest) if row.manifest else None
    interruptions = list(manifest.get("interruptions", [])) if manifest else []
    if manifest:
        events = [(int(e["at_us"]), str(e["kind"]), str(e.get("detail", ""))) for e in manifest.get("events", [])]
        events_source = "manifest"
    else:
        events = [(e.at_us, e.kind, e.detail) for e in R.events_of(s, session_id)]
        events_source = "station"
    if not personal:  # free text (reasons, event details) may name people: withheld with the rest
        interruptions = [{**it, "reason": WITHHELD if it.get("reason") else "",
                          "resume_reason": WITHHELD if it.get("resume_reason") else ""} for it in interruptions]
        events = [(at, kind, WITHHELD if d else "") for at, kind, d in events]
    start = row.started_at_us or (segs[0].start_us if segs else t)
    end = row.ended_at_us or (segs[-1].start_us + segs[-1].duration_us if segs else start + 1)
    language = lang()
    shapes = R.timeline(start, max(end, start + 1), segs, interruptions, events,
                        words=lambda w: i18n.cause_text(w, language) if w in i18n.CAUSE_WORDS
                        else i18n.event_text(w, language))
    if g.user.role in CONTENT_ROLES:  # the prosecutors' own markers (server annotations, web/live.py)
        from web.live import server_markers
        span = max(end - start, 1)
        shapes += [R.Shape("note", round(min(max((m.at_us - start) / span, 0.0), 1.0) * 1000, 2), 1.0,
                           f"{m.label} ({m.author_name})", m.at_us, m.at_us) for m in server_markers(s, session_id)]
    custody = s.scalars(select(AuditEntry).where(AuditEntry.target == session_id,
                                                 AuditEntry.action.in_(CUSTODY_ACTIONS))
                        .order_by(AuditEntry.seq.desc()).limit(200)).all()
    can_content = g.user.role in CONTENT_ROLES  # in VIEW scope, a prosecutor is in CONTENT scope (web/scope.py)
    shares = s.scalars(select(Share).where(Share.session_id == session_id).order_by(Share.id)).all()
    from web import retention as RT
    from web.models import Case, CaseStatus
    from web.retention_pages import HoldForm, OutcomeForm, PlainForm
    from web.shares import RevokeShareForm, ShareForm
    return render_template(
        "sessions/detail.html", row=row, personal=personal, findings=[R.finding_text(f) for f in R.findings_of(row)],
        failed=R.failed_rules(row), shapes=shapes, events=events, events_source=events_source,
        interruptions=interruptions, interrogators=json.loads(row.interrogators or "[]") if personal else [],
        can_content=can_content, labels=EXPORT_LABELS, start_us=start, end_us=end, custody=custody,
        custody_detail=_custody_detail, shares=shares, now_us=t, share_form=ShareForm(),
        revoke_form=RevokeShareForm(), ret=RT.view_of(s, row, t), holds=RT.session_holds(s, row),
        case=s.get(Case, row.case_number) if row.case_number else None, case_statuses=[c.value for c in CaseStatus],
        hold_form=HoldForm(), outcome_form=OutcomeForm(), plain_form=PlainForm(), case_form=CaseCorrectionForm(),
        may_correct_case=can_content and not row.disposed_at_us and scope.reads_by_unit(s, row))


def _custody_detail(entry: AuditEntry) -> str:
    """What of an audit entry's detail the custody table shows (no free text)."""
    d = json.loads(entry.detail or "{}")
    keep = ("purpose", "key_index", "via", "label", "job", "verification", "share", "until_us", "allow")
    return ", ".join(f"{k}={d[k]}" for k in keep if k in d)


class CaseCorrectionForm(CsrfForm):
    case_number = StringField(validators=[DataRequired(), Length(max=200)])
    reason = StringField(validators=[DataRequired(), Length(max=2000)])


@bp.route("/<session_id>/case-number", methods=["POST"])
@require_roles(*CONTENT_ROLES)
def correct_case(session_id: str) -> ResponseReturnValue:
    """A case number mistyped at the station, corrected: the session then belongs to the right case (its scope,
    its retention, its holds). Only a prosecutor of the session's unit may (a prosecutor who sees it only through
    the case as typed may not move it); the signed header keeps what was typed, the page shows both, and the audit
    log says who corrected it, when and why. Refused while a legal hold of the whole case covers the session: the
    correction would take it out from under the hold."""
    s = db_session()
    row = scope.session_for(s, session_id, Need.CONTENT).row
    if not scope.reads_by_unit(s, row):
        raise Forbidden("only a prosecutor of the session's unit may correct its case number")
    if row.disposed_at_us is not None:
        raise Conflict(f"session {session_id} was disposed of: its tombstone keeps the case number it had")
    form = CaseCorrectionForm()
    form.require_valid()
    new = " ".join((form.case_number.data or "").split())
    if new == row.case_number:
        raise BadRequest(f"the session already belongs to case {new}")
    from web.retention import session_holds
    held = [h for h in session_holds(s, row) if h.case_number]
    if held:
        raise Conflict(f"legal hold #{held[0].id} of case {row.case_number} covers this session: "
                       "lift it before correcting the case number")
    old, row.case_number, row.case_corrected = row.case_number, new, True
    audit.append(s, at_us=now_us(), actor=g.user.username, action="session.case_corrected", target=session_id,
                 detail={"from": old, "to": new, "filed": row.case_number_filed, "reason": form.reason.data or ""})
    s.commit()
    return redirect(url_for("sessions.detail", session_id=session_id))


@bp.route("/<session_id>/annex.pdf")
@require_roles(*CONTENT_ROLES)
def annex(session_id: str) -> ResponseReturnValue:
    cfg = state().config
    s = db_session()
    row = scope.session_for(s, session_id, Need.CONTENT).row
    t = now_us()
    R.ensure_verified(s, cfg, row, t)
    header, manifest, records = load_session_documents(R.store_of(cfg), row.prefix)
    pdf = build_annex(header, manifest, records, generated_at_us=t)
    _audit("session.annex", session_id, verification=row.verification)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="annex-{session_id}.pdf"', "Cache-Control": "no-store"})


def sealed_copy(row: RecordingSession, label: str) -> tuple[dict[str, object], Response]:
    """The session as a sealed copy (irms.export/2) zipped into a temporary file in one pass
    (`verifier.export.export_zip`), then sent; (export info, response). Outside parties' copies (web/shares.py);
    prosecutors' copies are background jobs (web/exports.py)."""
    cfg = state().config
    s = db_session()
    R.check_not_disposed(row)
    t = now_us()
    opts = R.options_for(s, row)
    fd, zip_name = tempfile.mkstemp(prefix="irms-export-", suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as f:
            info = export_zip(R.store_of(cfg), row.session_id, opts, f, label,
                              dt.datetime.fromtimestamp(t / 1e6, dt.UTC))
    except BaseException:
        os.unlink(zip_name)
        raise
    resp = send_file(zip_name, mimetype="application/zip", as_attachment=True,
                     download_name=f"irms-{row.session_id}-{label}.zip", max_age=0)
    resp.headers["Cache-Control"] = "no-store"

    def remove() -> None:
        if os.path.exists(zip_name):
            os.unlink(zip_name)

    resp.call_on_close(remove)
    return info, resp
