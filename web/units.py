"""Units (a tree of procuracy jurisdictions), sites and rooms in units, users in units, case assignments.

The changes the admin pages and `irms-web unit|case` make, each an audit entry. What they mean
for who sees what is decided in one place, web/scope.py.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from evidence.errors import FormatError
from evidence.formats import check_code
from web import audit
from web.db import rows_changed
from web.errors import BadRequest, Conflict, NotFound
from web.models import CaseAssignment, Role, Room, Site, Unit, UnitKind, User, UserUnit


def _code(text: str, what: str) -> str:
    try:
        return check_code(text.strip(), what)
    except FormatError as err:
        raise BadRequest(str(err)) from None


def unit_by_code(s: Session, code: str) -> Unit:
    unit = s.scalars(select(Unit).where(Unit.code == code)).first()
    if unit is None:
        raise NotFound(f"no unit {code}")
    return unit


def user_by_name(s: Session, username: str) -> User:
    user = s.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username}")
    return user


def add_unit(s: Session, *, code: str, name: str, kind: str, parent: str | None, actor: str, now_us: int) -> Unit:
    """A new unit under `parent` (a unit code; None only for the national unit, the root)."""
    code = _code(code, "unit code")
    if kind not in {k.value for k in UnitKind}:
        raise BadRequest(f"unit kind {kind!r} is not one of {', '.join(k.value for k in UnitKind)}")
    if s.scalars(select(Unit).where(Unit.code == code)).first() is not None:
        raise Conflict(f"unit {code} already exists")
    parent_row = unit_by_code(s, parent) if parent else None
    if parent_row is None and kind != UnitKind.NATIONAL.value:
        raise BadRequest(f"unit {code}: only the national unit has no parent (give --parent)")
    if parent_row is not None and kind == UnitKind.NATIONAL.value:
        raise BadRequest(f"unit {code}: the national unit has no parent")
    unit = Unit(code=code, name=name.strip() or code, kind=kind, parent_id=parent_row.id if parent_row else None,
                created_at_us=now_us)
    s.add(unit)
    s.flush()
    audit.append(s, at_us=now_us, actor=actor, action="unit.add", target=code,
                 detail={"name": unit.name, "kind": kind, "parent": parent or ""})
    return unit


def ensure_unit(s: Session, *, code: str, name: str, kind: str, parent: Unit | None, now_us: int) -> Unit:
    """The unit, made without an audit entry if missing (the demo country, which audits itself once)."""
    unit = s.scalars(select(Unit).where(Unit.code == code)).first()
    if unit is None:
        unit = Unit(code=code, name=name, kind=kind, parent_id=parent.id if parent else None, created_at_us=now_us)
        s.add(unit)
        s.flush()
    return unit


def place_in_unit(s: Session, *, site: str, room: str | None, unit: str | None, actor: str, now_us: int) -> None:
    """Put a site (or one of its rooms) in a unit; `unit` None takes it out (a room then follows its site)."""
    site_row = s.scalars(select(Site).where(Site.code == site)).first()
    if site_row is None:
        raise NotFound(f"no site {site}")
    unit_row = unit_by_code(s, unit) if unit else None
    target: Site | Room = site_row
    if room:
        room_row = s.scalars(select(Room).where(Room.site_id == site_row.id, Room.code == room)).first()
        if room_row is None:
            raise NotFound(f"site {site} has no room {room}")
        target = room_row
    target.unit_id = unit_row.id if unit_row else None
    audit.append(s, at_us=now_us, actor=actor, action="unit.place", target=f"{site}/{room}" if room else site,
                 detail={"unit": unit or ""})
    s.flush()


def assign_user(s: Session, *, username: str, unit: str, personal_data: bool, actor: str, now_us: int) -> UserUnit:
    """Assign a user to a unit (again: change the personal-data grant)."""
    user = user_by_name(s, username)
    unit_row = unit_by_code(s, unit)
    if personal_data and user.role != Role.AUDITOR.value:
        raise BadRequest("the personal-data grant is for auditors (prosecutors see it in their scope anyway)")
    row = s.get(UserUnit, (user.id, unit_row.id))
    if row is None:
        row = UserUnit(user_id=user.id, unit_id=unit_row.id, personal_data=personal_data, granted_by=actor,
                       granted_at_us=now_us)
        s.add(row)
    else:
        row.personal_data, row.granted_by, row.granted_at_us = personal_data, actor, now_us
    audit.append(s, at_us=now_us, actor=actor, action="unit.assign_user", target=username,
                 detail={"unit": unit, "personal_data": personal_data})
    s.flush()
    return row


def unassign_user(s: Session, *, username: str, unit: str, actor: str, now_us: int) -> None:
    user = user_by_name(s, username)
    unit_row = unit_by_code(s, unit)
    if rows_changed(s, delete(UserUnit).where(UserUnit.user_id == user.id, UserUnit.unit_id == unit_row.id)) == 0:
        raise NotFound(f"user {username} is not assigned to unit {unit}")
    audit.append(s, at_us=now_us, actor=actor, action="unit.unassign_user", target=username, detail={"unit": unit})
    s.flush()


def assign_case(s: Session, *, case_number: str, username: str, actor: str, now_us: int) -> None:
    """Give a named prosecutor the sessions of one case, wherever they were recorded."""
    case_number = case_number.strip()
    if not case_number or len(case_number) > 200:
        raise BadRequest("case number: 1 to 200 characters")
    user = user_by_name(s, username)
    if user.role != Role.PROSECUTOR.value:
        raise BadRequest(f"cases are assigned to prosecutors; {username} is {user.role}")
    if s.get(CaseAssignment, (case_number, user.id)) is not None:
        raise Conflict(f"case {case_number} is already assigned to {username}")
    s.add(CaseAssignment(case_number=case_number, user_id=user.id, granted_by=actor, granted_at_us=now_us))
    audit.append(s, at_us=now_us, actor=actor, action="case.assign", target=username,
                 detail={"case_number": case_number})
    s.flush()


def unassign_case(s: Session, *, case_number: str, username: str, actor: str, now_us: int) -> None:
    user = user_by_name(s, username)
    if rows_changed(s, delete(CaseAssignment).where(CaseAssignment.case_number == case_number.strip(),
                                                   CaseAssignment.user_id == user.id)) == 0:
        raise NotFound(f"case {case_number} is not assigned to {username}")
    audit.append(s, at_us=now_us, actor=actor, action="case.unassign", target=username,
                 detail={"case_number": case_number.strip()})
    s.flush()
