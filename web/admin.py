"""Administration: users, sites, rooms, stations, enrollment codes, revocation, the audit log, units.

Admins manage users (add, disable and enable, reset a password, change a role: disabling and a
reset end the user's logins at once; an admin cannot disable or demote themselves), sites and
rooms, units (who sees which sessions: web/scope.py decides, web/units.py changes) and case
assignments; admins and IT staff manage stations (R14: IT staff manage equipment but never see
content). Every change is an audit entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import BooleanField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional, Regexp

from web import audit, i18n
from web import stations as ST
from web import twofactor as TF
from web import units as UN
from web import users as U
from web.auth import require_roles
from web.context import db_session, lang, now_us, state
from web.coverage import Reason
from web.errors import AuditBroken, BadRequest, Conflict, NotFound, WebError
from web.forms import CsrfForm
from web.health import beat_of
from web.models import (
    AuditEntry,
    CaseAssignment,
    FacilityType,
    Heartbeat,
    Province,
    Role,
    Room,
    Site,
    Station,
    Unit,
    UnitKind,
    User,
    UserUnit,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")
# Form messages are English message ids, translated where the page shows them beside their field (web/i18n.py).
REQUIRED = "This field is required."
TOO_LONG = "Too long."
CHOOSE = "Choose one from the list."
CODE = Regexp(r"^[A-Za-z0-9._-]{1,64}$", message="Use only letters, digits, '.', '_' or '-'.")


class SiteForm(CsrfForm):
    code = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    name = StringField(validators=[DataRequired(message=REQUIRED), Length(max=300, message=TOO_LONG)])
    province = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    facility_type = StringField(validators=[AnyOf([f.value for f in FacilityType], message=CHOOSE)])


class RoomForm(CsrfForm):
    site = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    code = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    name = StringField(validators=[DataRequired(message=REQUIRED), Length(max=300, message=TOO_LONG)])


class CodeForm(CsrfForm):
    site = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    room = StringField(validators=[Optional(), CODE])


class WitnessForm(CsrfForm):
    heads = FileField(validators=[FileRequired()])


class RevokeForm(CsrfForm):
    reason = StringField(validators=[DataRequired(message=REQUIRED), Length(max=300, message=TOO_LONG)])


class UnitForm(CsrfForm):
    code = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    name = StringField(validators=[DataRequired(message=REQUIRED), Length(max=300, message=TOO_LONG)])
    kind = StringField(validators=[AnyOf([k.value for k in UnitKind], message=CHOOSE)])
    parent = StringField(validators=[Optional(), CODE])


class PlaceForm(CsrfForm):
    site = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    room = StringField(validators=[Optional(), CODE])
    unit = StringField(validators=[Optional(), CODE])


class MemberForm(CsrfForm):
    username = StringField(validators=[DataRequired(message=REQUIRED), Length(max=100, message=TOO_LONG)])
    unit = StringField(validators=[DataRequired(message=REQUIRED), CODE])
    personal_data = BooleanField()
    action = StringField(validators=[AnyOf(["add", "remove"], message=CHOOSE)])


class CaseForm(CsrfForm):
    case_number = StringField(validators=[DataRequired(message=REQUIRED), Length(max=200, message=TOO_LONG)])
    username = StringField(validators=[DataRequired(message=REQUIRED), Length(max=100, message=TOO_LONG)])
    action = StringField(validators=[AnyOf(["add", "remove"], message=CHOOSE)])


class UserForm(CsrfForm):
    username = StringField(validators=[DataRequired(message=REQUIRED), Length(max=100, message=TOO_LONG)])
    display_name = StringField(validators=[Optional(), Length(max=200, message=TOO_LONG)])
    role = StringField(validators=[AnyOf([r.value for r in Role], message=CHOOSE)])
    ldap = BooleanField()
    """The unit's LDAP directory checks the password (no password here)."""


class RoleForm(CsrfForm):
    role = StringField(validators=[AnyOf([r.value for r in Role], message=CHOOSE)])


def _form_error(form: CsrfForm) -> BadRequest:
    field, messages = next(iter(form.errors.items()))
    return BadRequest(f"{field}: {messages[0]}")


def _site_choices() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Every site (code, name) with its rooms (code, name): what the forms offer to choose from."""
    s = db_session()
    rooms: dict[int, list[tuple[str, str]]] = {}
    for site_id, code, name in s.execute(select(Room.site_id, Room.code, Room.name).order_by(Room.code)):
        rooms.setdefault(site_id, []).append((code, name))
    return [(code, name, rooms.get(sid, [])) for sid, code, name in
            s.execute(select(Site.id, Site.code, Site.name).order_by(Site.code).limit(5000))]


def _site_options() -> list[tuple[str, str]]:
    return [(code, f"{code} — {name}") for code, name, _ in _site_choices()]


def _done(message: str, **params: str) -> None:
    """A success message for the next page, translated there (its language may change before it is shown)."""
    flash([message, params], "success")  # type: ignore[arg-type] # a list is kept as is in the session


def _sites_page(form: SiteForm | None = None, room_form: RoomForm | None = None,
                status: int = 200) -> ResponseReturnValue:
    s = db_session()
    provinces = s.scalars(select(Province).order_by(Province.code)).all()
    all_sites = s.scalars(select(Site).order_by(Site.code).limit(2000)).all()
    return render_template("admin/sites.html", sites=all_sites, form=form or SiteForm(formdata=None),
                           room_form=room_form or RoomForm(formdata=None), provinces={p.id: p for p in provinces},
                           province_list=provinces, facility_types=[f.value for f in FacilityType],
                           province_options=[(p.code, p.name) for p in provinces],
                           type_options=[(f.value, i18n.translate(f.value, lang())) for f in FacilityType],
                           site_options=_site_options(), open_form="site" if form else "room" if room_form else ""
                           ), status


@bp.route("/sites", methods=["GET"])
@require_roles("admin", "it_staff")
def sites() -> ResponseReturnValue:
    return _sites_page()


@bp.route("/sites", methods=["POST"])
@require_roles("admin")
def add_site() -> ResponseReturnValue:
    """Add a site; a mistake comes back inline, in the page's language, with what was typed kept."""
    s = db_session()
    form = SiteForm()
    if form.validate_on_submit():
        province = s.scalars(select(Province).where(Province.code == form.province.data)).first()
        if province is None:
            form.province.errors = [CHOOSE]
        elif s.scalars(select(Site).where(Site.code == form.code.data)).first() is not None:
            form.code.errors = ["A site with this code already exists."]
        else:
            site = Site(code=form.code.data or "", name=form.name.data or "", province_id=province.id,
                        facility_type=form.facility_type.data or "")
            s.add(site)
            audit.append(s, at_us=now_us(), actor=g.user.username, action="site.add", target=site.code,
                         detail={"name": site.name, "province": province.code,
                                 "facility_type": site.facility_type})
            s.commit()
            _done("Site {code} added.", code=site.code)
            return redirect(url_for("admin.sites"))
    return _sites_page(form=form, status=400)


@bp.route("/rooms", methods=["POST"])
@require_roles("admin")
def add_room() -> ResponseReturnValue:
    s = db_session()
    form = RoomForm()
    if form.validate_on_submit():
        site = s.scalars(select(Site).where(Site.code == form.site.data)).first()
        if site is None:
            form.site.errors = [CHOOSE]
        elif s.scalars(select(Room).where(Room.site_id == site.id, Room.code == form.code.data)).first():
            form.code.errors = ["This site already has a room with this code."]
        else:
            s.add(Room(site_id=site.id, code=form.code.data or "", name=form.name.data or ""))
            audit.append(s, at_us=now_us(), actor=g.user.username, action="room.add",
                         target=f"{site.code}/{form.code.data}", detail={"name": form.name.data or ""})
            s.commit()
            _done("Room {room} added to {site}.", room=form.code.data or "", site=site.code)
            return redirect(url_for("admin.sites"))
    return _sites_page(room_form=form, status=400)


@bp.route("/stations", methods=["GET"])
@require_roles("admin", "it_staff")
def stations() -> ResponseReturnValue:
    return _stations_page(_station_rows(), CodeForm(formdata=None))


def _stations_page(rows: Sequence[Any], code_form: CodeForm, status: int = 200,
                   revoke: tuple[str, RevokeForm] | None = None) -> ResponseReturnValue:
    """The stations with their health now: last heartbeat, its verdict (fresh or silent), the agent's version."""
    t = now_us()
    fresh_us = 2 * state().config.heartbeat_interval_s * 1_000_000
    health: dict[str, tuple[bool | None, str, list[Reason]]] = {}
    for st, _room, _site, hb in rows:
        if hb is None:
            health[st.station_id] = (None, "", [])
            continue
        beat = beat_of(st.station_id, hb.sent_us, hb.received_us, hb.ok, hb.reasons, hb.disk_free_bytes,
                       hb.clock_offset_ms, hb.body)
        silent = t - (st.last_seen_us or hb.sent_us) > fresh_us
        health[st.station_id] = (not silent and hb.ok, beat.versions.get("agent", ""), list(beat.reasons))
    return render_template("admin/stations.html", rows=rows, code_form=code_form, revoke_form=RevokeForm(),
                           new_code=None, health=health, site_choices=_site_choices(), site_options=_site_options(),
                           revoke=revoke), status


def _station_rows() -> Sequence[Any]:
    s = db_session()
    return s.execute(select(Station, Room, Site, Heartbeat).outerjoin(Room, Station.room_id == Room.id)
                     .outerjoin(Site, Room.site_id == Site.id)
                     .outerjoin(Heartbeat, Heartbeat.id == Station.last_heartbeat_id)
                     .order_by(Station.station_id).limit(2000)).all()


@bp.route("/codes", methods=["POST"])
@require_roles("admin", "it_staff")
def issue_code() -> ResponseReturnValue:
    s = db_session()
    form = CodeForm()
    if form.validate_on_submit():
        site = s.scalars(select(Site).where(Site.code == form.site.data)).first()
        room = None
        if site is None:
            form.site.errors = [CHOOSE]
        elif form.room.data:
            room = s.scalars(select(Room).where(Room.site_id == site.id, Room.code == form.room.data)).first()
            if room is None:
                form.room.errors = ["This room is not in the chosen site."]
        if site is not None and not form.room.errors:
            t = now_us()
            ttl = state().config.enrollment_code_ttl_s
            code = ST.issue_code(s, site=site, room=room, actor=g.user.username, now_us=t, ttl_s=ttl)
            s.commit()
            return render_template("admin/code.html", code=code, site=site, room=room,
                                   expires_us=t + ttl * 1_000_000)
    return _stations_page(_station_rows(), form, status=400)


@bp.route("/stations/<station_id>/revoke", methods=["POST"])
@require_roles("admin", "it_staff")
def revoke(station_id: str) -> ResponseReturnValue:
    s = db_session()
    form = RevokeForm()
    station = s.scalars(select(Station).where(Station.station_id == station_id)).first()
    if station is None:
        raise NotFound(f"no station {station_id}")
    if not form.validate_on_submit():
        return _stations_page(_station_rows(), CodeForm(formdata=None), status=400,
                              revoke=(station_id, form))
    ST.revoke(s, station, actor=g.user.username, reason=form.reason.data or "", now_us=now_us())
    s.commit()
    _done("Station {station} revoked.", station=station_id)
    return redirect(url_for("admin.stations"))


@bp.route("/audit")
@require_roles("admin", "auditor")
def audit_log() -> ResponseReturnValue:
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 2**63:
        raise BadRequest(f"before: {before} is not an audit log entry number")
    return _audit_page(before, None)


def _audit_page(before: int | None, witness: tuple[bool, str] | None) -> ResponseReturnValue:
    s = db_session()
    q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(200)
    if before:
        q = q.where(AuditEntry.seq < before)
    entries = s.scalars(q).all()
    try:
        report = audit.verify(s)
        chain_ok, chain_msg = True, f"{report.entries}"
    except AuditBroken as err:
        chain_ok, chain_msg = False, str(err)
    return render_template("admin/audit.html", entries=entries, chain_ok=chain_ok, chain_msg=chain_msg,
                           witness_form=WitnessForm(), witness=witness)


@bp.route("/audit/witness", methods=["POST"])
@require_roles("admin", "auditor")
def audit_witness() -> ResponseReturnValue:
    """Check the log against audit heads collected from stations (a JSON list of irms.audit-head/1)."""
    from web.audit_anchor import parse_heads, verify_witnessed
    form = WitnessForm()
    if not form.validate_on_submit():
        raise _form_error(form)
    try:
        heads = parse_heads(form.heads.data.read(16 * 2**20).decode("utf-8"), "the witnessed heads file")
    except (AuditBroken, UnicodeDecodeError):
        raise BadRequest("the witnessed heads file is neither JSON nor JSON lines") from None
    s = db_session()
    try:
        got = verify_witnessed(s, heads, state().audit_signer.public_key)
        witness = (True, f"{got.heads}")
    except AuditBroken as err:
        witness = (False, str(err))
    audit.append(s, at_us=now_us(), actor=g.user.username, action="audit.witness_check", target="",
                 detail={"heads": len(heads), "ok": witness[0]})
    s.commit()
    return _audit_page(None, witness)


# --- units: who sees which sessions (web/scope.py) ------------------------------------------------------


def _units_page(status: int = 200, failed: str = "", problem: WebError | None = None,
                **forms: CsrfForm) -> ResponseReturnValue:
    """The units page; after a refused form, that form again with its errors beside its fields (or, for a
    refusal of the change itself, above the form in the page's language with the server's detail) and
    what was typed kept."""
    s = db_session()
    all_units = s.scalars(select(Unit).order_by(Unit.code)).all()
    by_id = {u.id: u for u in all_units}
    members = s.execute(select(User.username, User.role, UserUnit.unit_id, UserUnit.personal_data)
                        .join(UserUnit, UserUnit.user_id == User.id).order_by(User.username)).all()
    cases = s.execute(select(CaseAssignment.case_number, User.username).join(User, User.id == CaseAssignment.user_id)
                      .order_by(CaseAssignment.case_number)).all()
    places = s.execute(select(Site.code, Site.unit_id).order_by(Site.code).limit(2000)).all()
    rooms = s.execute(select(Site.code, Room.code, Room.unit_id).join(Site, Site.id == Room.site_id)
                      .where(Room.unit_id.is_not(None)).order_by(Site.code, Room.code)).all()
    return render_template("admin/units.html", units=all_units, by_id=by_id, members=members, cases=cases,
                           places=places, rooms=rooms, unit_form=forms.get("unit") or UnitForm(formdata=None),
                           place_form=forms.get("place") or PlaceForm(formdata=None),
                           member_form=forms.get("member") or MemberForm(formdata=None),
                           case_form=forms.get("case") or CaseForm(formdata=None), kinds=[k.value for k in UnitKind],
                           site_options=_site_options(), site_choices=_site_choices(),
                           kind_options=[(k.value, k.value) for k in UnitKind],
                           unit_options=[(u.code, f"{u.code} — {u.name}") for u in all_units],
                           failed=failed, problem=_problem(problem)), status


def _problem(err: WebError | None) -> tuple[str, str] | None:
    """A refused change as the form shows it: the kind of refusal in the page's language, the detail as said."""
    return None if err is None else (i18n.status_text(err.http_status), str(err))


def _refused(page: Callable[..., ResponseReturnValue], name: str, form: CsrfForm,
             change: Callable[[], object], message: str, back: str = "admin.units") -> ResponseReturnValue:
    """Validate `form`, make the change, commit and redirect with `message`; else the page again, inline."""
    if not form.validate_on_submit():
        return page(400, name, None, **{name: form})
    s = db_session()
    try:
        change()
    except (BadRequest, NotFound, Conflict) as err:
        s.rollback()
        return page(err.http_status, name, err, **{name: form})
    s.commit()
    _done(message)
    return redirect(url_for(back))


@bp.route("/units", methods=["GET"])
@require_roles("admin")
def units() -> ResponseReturnValue:
    return _units_page()


@bp.route("/units", methods=["POST"])
@require_roles("admin")
def add_unit() -> ResponseReturnValue:
    form = UnitForm()
    return _refused(_units_page, "unit", form, lambda: UN.add_unit(
        db_session(), code=form.code.data or "", name=form.name.data or "", kind=form.kind.data or "",
        parent=form.parent.data or None, actor=g.user.username, now_us=now_us()), "Saved.")


@bp.route("/units/place", methods=["POST"])
@require_roles("admin")
def place() -> ResponseReturnValue:
    form = PlaceForm()
    return _refused(_units_page, "place", form, lambda: UN.place_in_unit(
        db_session(), site=form.site.data or "", room=form.room.data or None, unit=form.unit.data or None,
        actor=g.user.username, now_us=now_us()), "Saved.")


@bp.route("/units/members", methods=["POST"])
@require_roles("admin")
def members() -> ResponseReturnValue:
    form = MemberForm()

    def change() -> None:
        if form.action.data == "add":
            UN.assign_user(db_session(), username=form.username.data or "", unit=form.unit.data or "",
                           personal_data=bool(form.personal_data.data), actor=g.user.username, now_us=now_us())
        else:
            UN.unassign_user(db_session(), username=form.username.data or "", unit=form.unit.data or "",
                             actor=g.user.username, now_us=now_us())
    return _refused(_units_page, "member", form, change, "Saved.")


@bp.route("/cases", methods=["POST"])
@require_roles("admin")
def cases() -> ResponseReturnValue:
    form = CaseForm()

    def change() -> None:
        if form.action.data == "add":
            UN.assign_case(db_session(), case_number=form.case_number.data or "", username=form.username.data or "",
                           actor=g.user.username, now_us=now_us())
        else:
            UN.unassign_case(db_session(), case_number=form.case_number.data or "",
                             username=form.username.data or "", actor=g.user.username, now_us=now_us())
    return _refused(_units_page, "case", form, change, "Saved.")


# --- users ------------------------------------------------------------------------------------------------


def _users_page(status: int = 200, failed: str = "", problem: WebError | None = None,
                **forms: CsrfForm) -> ResponseReturnValue:
    s = db_session()
    rows = s.scalars(select(User).order_by(User.username).limit(5000)).all()
    return render_template("admin/users.html", rows=rows, logins=U.open_logins(s, now_us()),
                           form=forms.get("user") or UserForm(formdata=None), role_form=RoleForm(), roles=U.ROLES,
                           role_options=[(r, r) for r in U.ROLES],
                           failed=failed, problem=_problem(problem)), status


@bp.route("/users", methods=["GET"])
@require_roles("admin")
def users() -> ResponseReturnValue:
    return _users_page()


def _password_page(user: User, password: str) -> ResponseReturnValue:
    return render_template("admin/password.html", target=user, password=password)


@bp.route("/users", methods=["POST"])
@require_roles("admin")
def add_user() -> ResponseReturnValue:
    """A new user with a generated password, shown once; a mistake comes back inline with the input kept."""
    form = UserForm()
    if not form.validate_on_submit():
        return _users_page(400, "user", None, user=form)
    s = db_session()
    password = "" if form.ldap.data else U.generated_password()
    try:
        user = U.add_user(s, username=form.username.data or "", display_name=form.display_name.data or "",
                          role=form.role.data or "", password=password, actor=g.user.username, now_us=now_us(),
                          auth_source=U.LDAP if form.ldap.data else "local")
    except (BadRequest, Conflict) as err:
        s.rollback()
        return _users_page(err.http_status, "user", err, user=form)
    s.commit()
    if form.ldap.data:
        _done("User {username} added.", username=user.username)
        return redirect(url_for("admin.users"))
    return _password_page(user, password)


def _other_user(username: str, what: str) -> User:
    user = U.find_user(db_session(), username)
    if user.id == g.user.id:
        raise Conflict(f"an admin cannot {what} their own account (another admin can)")
    return user


def _user_action(username: str, change: Callable[[Session], object], message: str, form: CsrfForm | None = None,
                 answer: Callable[[], ResponseReturnValue] | None = None) -> ResponseReturnValue:
    """A button on a user's row: the change, committed, then the users page with `message`; a refusal (the
    form, the user unknown, an admin acting on their own account) comes back on the users page, above the
    table, in the page's language with the server's detail."""
    form = form or CsrfForm()
    s = db_session()
    try:
        if not form.validate_on_submit():
            raise _form_error(form)
        change(s)
    except (BadRequest, NotFound, Conflict) as err:
        s.rollback()
        return _users_page(err.http_status, "row", err)
    s.commit()
    if answer is not None:
        return answer()
    _done(message, username=username)
    return redirect(url_for("admin.users"))


@bp.route("/users/<username>/disable", methods=["POST"])
@require_roles("admin")
def disable_user(username: str) -> ResponseReturnValue:
    return _user_action(username, lambda s: U.set_active(s, _other_user(username, "disable"), False,
                                                        actor=g.user.username, now_us=now_us()),
                        i18n.N_("User {username} disabled."))


@bp.route("/users/<username>/enable", methods=["POST"])
@require_roles("admin")
def enable_user(username: str) -> ResponseReturnValue:
    return _user_action(username, lambda s: U.set_active(s, U.find_user(s, username), True, actor=g.user.username,
                                                        now_us=now_us()),
                        i18n.N_("User {username} enabled."))


@bp.route("/users/<username>/reset-password", methods=["POST"])
@require_roles("admin")
def reset_password(username: str) -> ResponseReturnValue:
    """A generated password, shown once; the user's logins end at once."""
    made: list[tuple[User, str]] = []

    def change(s: Session) -> None:
        user = _other_user(username, "reset the password of")
        password = U.generated_password()
        U.set_password(s, user, password, actor=g.user.username, now_us=now_us())
        made.append((user, password))
    return _user_action(username, change, "", answer=lambda: _password_page(*made[0]))


@bp.route("/users/<username>/role", methods=["POST"])
@require_roles("admin")
def set_role(username: str) -> ResponseReturnValue:
    form = RoleForm()
    return _user_action(username, lambda s: U.set_role(s, _other_user(username, "change the role of"),
                                                      form.role.data or "", actor=g.user.username, now_us=now_us()),
                        i18n.N_("Role of {username} changed."), form)


@bp.route("/users/<username>/reset-two-factor", methods=["POST"])
@require_roles("admin")
def reset_two_factor(username: str) -> ResponseReturnValue:
    """The user's authenticator and recovery codes go (a lost phone); their logins end; they enrol again."""
    return _user_action(username, lambda s: TF.reset(s, _other_user(username, "reset the second factor of"),
                                                    actor=g.user.username, now_us=now_us()),
                        i18n.N_("Second factor of {username} reset."))
