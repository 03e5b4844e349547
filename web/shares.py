"""Sharing one session with a named outside party (defence counsel, a court) until a time.

A prosecutor who may read the session's content (web/scope.py) shares it: for whom, what (replay,
the sealed copy, or both) and for how many days. The access code (32 random bytes, URL-safe) is
shown once, in a link whose fragment carries it (`/shared/#<code>`: a fragment never reaches the
server, so the code is in no access log); only its SHA-256 is kept. The party opens the link, the
page posts the code, and the share is unlocked in that browser (signed cookie: share id and code
hash); from then on each request is checked again (web/scope.py `share_for`): the share ends by
itself at its time, or when revoked, at once. The receipt (PDF) says who, what, until when and the
session's seal (`IRMS1:<session>:<manifest SHA-256>`, the chain head) and holds no code.
Every use is an audit entry: share.create, share.revoke, share.open (and share.refused for a
code of an ended share), share.replay (per replay grant, as for prosecutors), share.export.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange

from web import audit, scope
from web import recordings as R
from web import replay as RP
from web.auth import require_roles
from web.context import db_session, now_us, state
from web.errors import BadRequest, Conflict, Forbidden, NotFound
from web.forms import CsrfForm
from web.live import investigator_markers, server_markers
from web.models import RecordingSession, Share, ShareAllow
from web.scope import Need
from web.sessions import CONTENT_ROLES, sealed_copy

bp = Blueprint("shares", __name__)
PARTY_KINDS = {"defence_counsel": "defence-file", "court": "court-file", "other": "shared-file"}
"""Kinds of outside party, and the label of the sealed copy they download."""
MAX_DAYS = 90


class ShareForm(CsrfForm):
    party = StringField(validators=[DataRequired(), Length(max=200)])
    party_kind = StringField(validators=[AnyOf(list(PARTY_KINDS))])
    allow = StringField(validators=[AnyOf([a.value for a in ShareAllow])])
    days = IntegerField(validators=[DataRequired(), NumberRange(1, MAX_DAYS)])
    server_markers = BooleanField(default=False)


class RevokeShareForm(CsrfForm):
    pass


class CodeForm(CsrfForm):
    code = StringField(validators=[DataRequired(), Length(max=200)])


def _form_error(form: CsrfForm) -> BadRequest:
    field, messages = next(iter(form.errors.items()))
    return BadRequest(f"{field}: {messages[0]}")


def create(s: Session, row: RecordingSession, *, party: str, party_kind: str, allow: str, days: int, actor: str,
           now_us: int, server_markers: bool = False) -> tuple[Share, str]:
    """A new share of a verified session; returns it and its access code (shown once, never stored). With
    `server_markers` the party also sees the prosecutors' own markers made up to now (never later ones)."""
    if row.verification != "verified" or not row.manifest_sha256:
        raise Conflict(f"session {row.session_id} is not verified: only a verified session is shared (its seal)")
    code = secrets.token_urlsafe(32)
    share = Share(code_hash=scope.code_hash(code), session_id=row.session_id, party=party.strip(),
                  party_kind=party_kind, allow=allow, manifest_sha256=row.manifest_sha256,
                  chain_head=str(json.loads(row.manifest).get("chain_head", "")), created_by=actor,
                  created_at_us=now_us, expires_at_us=now_us + days * 86_400_000_000, revoked_at_us=None,
                  revoked_by="", server_markers=server_markers)
    s.add(share)
    s.flush()
    audit.append(s, at_us=now_us, actor=actor, action="share.create", target=row.session_id,
                 detail={"share": share.id, "party": share.party, "party_kind": party_kind, "allow": allow,
                         "until_us": share.expires_at_us, "server_markers": server_markers})
    return share, code


# --- the prosecutor's side ----------------------------------------------------------------------------


@bp.route("/sessions/<session_id>/shares", methods=["POST"])
@require_roles(*CONTENT_ROLES)
def add(session_id: str) -> ResponseReturnValue:
    s = db_session()
    row = scope.session_for(s, session_id, Need.CONTENT).row
    form = ShareForm()
    if not form.validate_on_submit():
        raise _form_error(form)
    R.ensure_verified(s, state().config, row, now_us())
    share, code = create(s, row, party=form.party.data or "", party_kind=form.party_kind.data or "",
                         allow=form.allow.data or "", days=int(form.days.data or 0), actor=g.user.username,
                         now_us=now_us(), server_markers=bool(form.server_markers.data))
    s.commit()
    link = url_for("shares.unlock", _external=True) + "#" + code
    import segno
    qr = segno.make(link, error="m").svg_inline(scale=4)
    return Response(render_template("shares/created.html", share=share, row=row, link=link, code=code, qr=qr),
                    status=201, headers={"Cache-Control": "no-store"})


def _own_share(session_id: str, share_id: int) -> tuple[Share, RecordingSession]:
    s = db_session()
    row = scope.session_for(s, session_id, Need.CONTENT).row
    share = s.get(Share, share_id)
    if share is None or share.session_id != session_id:
        raise NotFound(f"session {session_id} has no share {share_id}")
    return share, row


@bp.route("/sessions/<session_id>/shares/<int:share_id>/revoke", methods=["POST"])
@require_roles(*CONTENT_ROLES)
def revoke(session_id: str, share_id: int) -> ResponseReturnValue:
    share, _ = _own_share(session_id, share_id)
    if not RevokeShareForm().validate_on_submit():
        raise BadRequest("form refused")
    s = db_session()
    if share.revoked_at_us is None:
        share.revoked_at_us, share.revoked_by = now_us(), g.user.username
        audit.append(s, at_us=share.revoked_at_us, actor=g.user.username, action="share.revoke", target=session_id,
                     detail={"share": share.id})
        s.commit()
    return redirect(url_for("sessions.detail", session_id=session_id))


@bp.route("/sessions/<session_id>/shares/<int:share_id>/receipt.pdf")
@require_roles(*CONTENT_ROLES)
def receipt(session_id: str, share_id: int) -> ResponseReturnValue:
    share, row = _own_share(session_id, share_id)
    pdf = receipt_pdf(share, row, state().config.timezone)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="share-{share.id}-{session_id}.pdf"', "Cache-Control": "no-store"})


def receipt_pdf(share: Share, row: RecordingSession, tz: str) -> bytes:
    """Who, what, until when, and the session's seal (with its QR code): no access code."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    from verifier.annex import FONT_DIRS, Seal, qr_png

    def font(name: str) -> str:
        for d in FONT_DIRS:
            if (Path(d) / name).exists():
                return str(Path(d) / name)
        raise NotFound(f"font {name} not found (install fonts-dejavu-core)")

    def when(us: int) -> str:
        return dt.datetime.fromtimestamp(us / 1e6, ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M:%S")

    seal = Seal(share.session_id, share.manifest_sha256).text()
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(18, 15, 18)
    pdf.add_font("Sans", "", font("DejaVuSans.ttf"))
    pdf.add_font("Sans", "B", font("DejaVuSans-Bold.ttf"))
    pdf.add_font("Mono", "", font("DejaVuSansMono.ttf"))
    pdf.set_title(f"Biên nhận chia sẻ {share.id} - phiên ghi {share.session_id}")
    pdf.set_creator("IRMS irms-web")
    pdf.add_page()

    def line(text: str, size: float = 10, style: str = "", align: str = "L") -> None:
        pdf.set_font("Sans", style, size)
        pdf.multi_cell(pdf.epw, 6, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def field(label: str, value: str, mono: bool = False) -> None:
        pdf.set_font("Sans", "B", 10)
        pdf.cell(58, 6, label, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.set_font("Mono" if mono else "Sans", "", 8.5 if mono else 10)
        pdf.multi_cell(pdf.epw - 58, 6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    allow = {"replay": "xem lại (replay)", "export": "tải bản sao niêm phong (sealed copy)",
             "replay+export": "xem lại và tải bản sao niêm phong (replay and sealed copy)"}[share.allow]
    line("BIÊN NHẬN CHIA SẺ BẢN GHI HỎI CUNG", 14, "B", "C")
    line("Share receipt: access to one interrogation recording for a limited time", 9, "", "C")
    pdf.ln(4)
    field("Số biên nhận / Share:", str(share.id))
    field("Người được chia sẻ / Party:", f"{share.party} ({share.party_kind})")
    field("Được phép / Allowed:", allow)
    field("Đánh dấu của kiểm sát viên / Prosecutors' markers:",
          "có, những đánh dấu đến lúc chia sẻ / yes, those made up to the share" if share.server_markers
          else "không / no")
    field("Phiên ghi / Session:", share.session_id, mono=True)
    field("Số vụ án / Case:", row.case_number)
    field("Từ / From:", f"{when(share.created_at_us)} ({tz})")
    field("Đến / Until:", f"{when(share.expires_at_us)} ({tz}); quyền truy cập tự chấm dứt / access ends by itself")
    if share.revoked_at_us is not None:
        field("Đã thu hồi / Revoked:", f"{when(share.revoked_at_us)} ({share.revoked_by})")
    field("Người chia sẻ / Shared by:", share.created_by)
    pdf.ln(2)
    line("Niêm phong của phiên ghi / The session's seal", 11, "B")
    field("Manifest SHA-256:", share.manifest_sha256, mono=True)
    field("Chain head:", share.chain_head, mono=True)
    field("Seal:", seal, mono=True)
    pdf.image(io.BytesIO(qr_png(seal)), x=pdf.l_margin, y=pdf.get_y() + 2, w=40, h=40)
    pdf.set_y(pdf.get_y() + 44)
    line("Bản sao tải về được kiểm chứng ngoại tuyến bằng `irms-verify session`; niêm phong trên phải trùng với "
         "manifest của bản sao. / A downloaded copy verifies offline with `irms-verify session`; its manifest "
         "must match the seal above. Mọi lần sử dụng đều được ghi nhật ký / every use is audited.", 8.5)
    return bytes(pdf.output())


# --- the outside party's side ------------------------------------------------------------------------


def _reader(share: Share) -> RP.Reader:
    return RP.Reader(f"share:{share.id}", "share.replay", f"share:{share.id}:", {"share": share.id})


@bp.route("/shared/", methods=["GET", "POST"])
def unlock() -> ResponseReturnValue:
    """The access code (the link's fragment, filled in by static/share.js, or typed) unlocks the share here."""
    form = CodeForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            raise _form_error(form)
        s = db_session()
        t = now_us()
        share = scope.share_by_code(s, form.code.data or "")
        try:
            scope.check_live(share, t)
        except Forbidden:  # the code of an ended share: its party tried again
            audit.append(s, at_us=t, actor=f"share:{share.id}", action="share.refused", target=share.session_id,
                         detail={"share": share.id})
            s.commit()
            raise
        unlocked = dict(session.get(scope.SHARES_KEY, {}))
        unlocked[str(share.id)] = share.code_hash
        session[scope.SHARES_KEY] = unlocked
        audit.append(s, at_us=t, actor=f"share:{share.id}", action="share.open", target=share.session_id,
                     detail={"share": share.id})
        s.commit()
        return redirect(url_for("shares.shared", share_id=share.id))
    return render_template("shares/unlock.html", form=form)


@bp.route("/shared/<int:share_id>/")
def shared(share_id: int) -> ResponseReturnValue:
    """What is shared, until when, the seal; the player when replay is allowed, the sealed copy's link."""
    share, row = scope.share_for(db_session(), share_id, None, now_us())
    extra = {"share": share, "label": PARTY_KINDS[share.party_kind]}
    if "replay" in share.allow.split("+"):
        return RP.page_html(RP.playable(row), _reader(share), f"{share.party} (share {share.id})",
                            url_for("shares.playlist", share_id=share.id), None, extra)
    return Response(render_template("sessions/replay.html", row=row, player=False, failed=R.failed_rules(row),
                                    **extra), headers=RP.NO_STORE)


@bp.route("/shared/<int:share_id>/index.m3u8")
def playlist(share_id: int) -> ResponseReturnValue:
    share, row = scope.share_for(db_session(), share_id, "replay", now_us())
    return RP.playlist_response(RP.playable(row), _reader(share))


@bp.route("/shared/<int:share_id>/seg/<int:idx>.ts")
def segment(share_id: int, idx: int) -> ResponseReturnValue:
    share, row = scope.share_for(db_session(), share_id, "replay", now_us())
    return RP.serve(RP.playable(row), idx, idx, _reader(share))


@bp.route("/shared/<int:share_id>/seg/<int:first>-<int:last>.ts")
def segments(share_id: int, first: int, last: int) -> ResponseReturnValue:
    share, row = scope.share_for(db_session(), share_id, "replay", now_us())
    RP.check_group(first, last)
    return RP.serve(RP.playable(row), first, last, _reader(share))


@bp.route("/shared/<int:share_id>/markers.json")
def markers(share_id: int) -> ResponseReturnValue:
    """The markers an outside party sees: the investigator's (signed events of the manifest: evidence, in the
    sealed copy and the annex too); the prosecutors' own (server annotations, their work) only when the share
    allows it, and then only those made up to the share's creation."""
    s = db_session()
    share, row = scope.share_for(s, share_id, "replay", now_us())
    shown = [m for m in server_markers(s, row.session_id) if m.created_us <= share.created_at_us] \
        if share.server_markers else []
    return jsonify({"investigator": investigator_markers(s, row),
                    "server": [{"at_us": m.at_us, "label": m.label, "author": m.author_name, "unit": m.unit_name}
                               for m in shown],
                    "media_map": R.media_map(RP._segs(row))}), 200, RP.NO_STORE


@bp.route("/shared/<int:share_id>/copy.zip")
def copy(share_id: int) -> ResponseReturnValue:
    s = db_session()
    share, row = scope.share_for(s, share_id, "export", now_us())
    info, resp = sealed_copy(row, PARTY_KINDS[share.party_kind])
    audit.append(s, at_us=now_us(), actor=f"share:{share.id}", action="share.export", target=row.session_id,
                 detail={"share": share.id, "label": PARTY_KINDS[share.party_kind],
                         "manifest_sha256": info["manifest_sha256"]})
    s.commit()
    return resp
