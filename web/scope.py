"""Who may read which session, and what of it: the one place this is decided ("nobody reads without the right").

Every route that serves something of a session asks here, after `web.auth.require_roles` checked the role:

- a person's **scope** (`scope_of`): the units they are assigned to and every unit below them
  (units form a tree: national, the 34 provincial units, their regional units); a user assigned to
  the national unit sees every session, also those of sites in no unit; a prosecutor also sees the
  sessions of the cases assigned to them by name, wherever they were recorded;
- a session's **unit**: its room's unit, else its site's (the site and room codes of its signed header);
- what a route **needs** (`Need`): VIEW (the list, the session page: verification, timeline, custody),
  CONTENT (picture, sound, annex, sealed copies, sharing them), INTEGRITY (witnessed chain heads);
- **personal data** (suspect, interrogators, case number, legal basis, the free text of reasons and
  events): shown to prosecutors in their scope; to auditors only where their unit assignment carries
  the personal-data grant (`shows_personal`). Searching by case number or suspect is limited to the
  sessions whose personal data the person may see, so a search is no oracle.

A session outside the scope is answered as if it did not exist (404, "no session ..."), so its id
reveals nothing. An outside party's access to one session (`Share`, web/shares.py) is decided here too
(`share_for`): the access code unlocked it in this browser, it has not ended (expiry, revocation), and it
allows what is asked (replay, the sealed copy).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from flask import g, session
from sqlalchemy import ColumnElement, false, func, select, true
from sqlalchemy.orm import Session

from web.errors import Forbidden, NotFound, Unauthenticated
from web.models import (
    CaseAssignment,
    RecordingSession,
    Role,
    Room,
    SessionOwner,
    Share,
    Site,
    Station,
    Unit,
    UnitKind,
    User,
    UserUnit,
)


class Need(StrEnum):
    VIEW = "view"
    CONTENT = "content"
    INTEGRITY = "integrity"


ROLES: dict[Need, tuple[str, ...]] = {
    Need.VIEW: (Role.PROSECUTOR.value, Role.AUDITOR.value),
    Need.CONTENT: (Role.PROSECUTOR.value,),
    Need.INTEGRITY: (Role.PROSECUTOR.value, Role.AUDITOR.value, Role.ADMIN.value),
}
"""The roles each need is open to at all (`require_roles(*ROLES[need])` on the route); the scope narrows it."""

EVERY_SESSION: dict[Need, tuple[str, ...]] = {Need.INTEGRITY: (Role.ADMIN.value,)}
"""Roles that hold a need for every session without units: admins read witnessed heads (hashes, nothing personal)."""


@dataclass(frozen=True)
class Scope:
    username: str
    role: str
    national: bool
    """Assigned to the national unit: every session, also of sites in no unit."""
    units: frozenset[int]
    """The units assigned and every unit below them."""
    cases: frozenset[str]
    """Case numbers assigned by name (prosecutors)."""
    personal_all: bool
    personal_units: frozenset[int]


def _children(s: Session) -> dict[int, list[int]]:
    """Every unit's child units (the whole table, read once per scope)."""
    children: dict[int, list[int]] = {}
    for uid, parent in s.execute(select(Unit.id, Unit.parent_id)):
        if parent is not None:
            children.setdefault(parent, []).append(uid)
    return children


def _below(children: dict[int, list[int]], roots: set[int]) -> set[int]:
    out, todo = set(), list(roots)
    while todo:
        u = todo.pop()
        if u not in out:
            out.add(u)
            todo.extend(children.get(u, ()))
    return out


def scope_of(s: Session, user: User) -> Scope:
    rows = s.execute(select(UserUnit.unit_id, UserUnit.personal_data, Unit.kind)
                     .join(Unit, Unit.id == UserUnit.unit_id).where(UserUnit.user_id == user.id)).all()
    national = any(kind == UnitKind.NATIONAL.value for _, _, kind in rows)
    prosecutor = user.role == Role.PROSECUTOR.value
    children = _children(s)  # once: every request of a replay reads the scope (each segment is checked)
    units = _below(children, {u for u, _, _ in rows})
    personal_roots = {u for u, p, _ in rows if p or prosecutor}
    cases = frozenset(s.scalars(select(CaseAssignment.case_number).where(CaseAssignment.user_id == user.id))
                      ) if prosecutor else frozenset()
    return Scope(user.username, user.role, national, frozenset(units), cases,
                 personal_all=national and (prosecutor or any(p for _, p, k in rows if k == UnitKind.NATIONAL.value)),
                 personal_units=frozenset(_below(children, personal_roots)))


def current(s: Session) -> Scope:
    """The logged-in user's scope, read once per request."""
    sc: Scope | None = g.get("scope")
    if sc is None:
        user = g.get("user")
        if user is None:
            raise Unauthenticated("log in first")
        sc = g.scope = scope_of(s, user)
    return sc


def unit_expr() -> ColumnElement[int]:
    """SQL: a session's unit (its room's, else its site's), correlated to `sessions`."""
    room_unit = (select(Room.unit_id).join(Site, Room.site_id == Site.id)
                 .where(Site.code == RecordingSession.site, Room.code == RecordingSession.room)
                 .correlate(RecordingSession).scalar_subquery())
    site_unit = (select(Site.unit_id).where(Site.code == RecordingSession.site)
                 .correlate(RecordingSession).scalar_subquery())
    return func.coalesce(room_unit, site_unit)


def _cases(sc: Scope) -> ColumnElement[bool]:
    return RecordingSession.case_number.in_(sorted(sc.cases)) if sc.cases else false()


def session_filter(sc: Scope, need: Need = Need.VIEW) -> ColumnElement[bool]:
    """SQL: the sessions `sc` may read for `need` (lists and searches)."""
    if sc.role not in ROLES[need]:
        return false()
    if sc.national or sc.role in EVERY_SESSION.get(need, ()):
        return true()
    return unit_expr().in_(sorted(sc.units)) | _cases(sc) if sc.units else _cases(sc)


def personal_filter(sc: Scope) -> ColumnElement[bool]:
    """SQL: the sessions whose personal data `sc` may see (and so search by)."""
    if sc.personal_all:
        return true()
    if sc.role == Role.PROSECUTOR.value:
        return session_filter(sc, Need.CONTENT)
    return unit_expr().in_(sorted(sc.personal_units)) if sc.personal_units else false()


def may_search_personal(sc: Scope) -> bool:
    return sc.role == Role.PROSECUTOR.value or sc.personal_all or bool(sc.personal_units)


def unit_of(s: Session, row: RecordingSession) -> int | None:
    return s.scalar(select(unit_expr()).select_from(RecordingSession).where(RecordingSession.id == row.id))


def units_of(s: Session, rows: list[RecordingSession]) -> dict[str, int | None]:
    if not rows:
        return {}
    return dict(s.execute(select(RecordingSession.session_id, unit_expr())
                          .where(RecordingSession.id.in_([r.id for r in rows]))).all())


def allows(sc: Scope, need: Need, unit: int | None, case_number: str) -> bool:
    if sc.role not in ROLES[need]:
        return False
    if sc.national or sc.role in EVERY_SESSION.get(need, ()):
        return True
    return (unit is not None and unit in sc.units) or (bool(case_number) and case_number in sc.cases)


def shows_personal(sc: Scope, unit: int | None, case_number: str) -> bool:
    if sc.personal_all:
        return True
    if sc.role == Role.PROSECUTOR.value:
        return allows(sc, Need.CONTENT, unit, case_number)
    return unit is not None and unit in sc.personal_units


@dataclass(frozen=True)
class Seen:
    """A session as this person may read it."""

    row: RecordingSession
    personal: bool


def session_for(s: Session, session_id: str, need: Need) -> Seen:
    """The session if the logged-in user may read it for `need`; 404 as for a missing one if not in scope."""
    sc = current(s)
    if sc.role not in ROLES[need]:
        raise Forbidden(f"role {sc.role} may not read sessions for {need}")
    row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == session_id)).first()
    if row is None:
        raise NotFound(f"no session {session_id}")
    unit = unit_of(s, row)
    if not allows(sc, need, unit, row.case_number):
        raise NotFound(f"no session {session_id}")
    return Seen(row, shows_personal(sc, unit, row.case_number))


def reads_by_unit(s: Session, row: RecordingSession) -> bool:
    """Does the logged-in user read `row` through their units (or nationally), not only through a case assigned by
    name? (Who may correct its case number: web/sessions.py `correct_case`.)"""
    sc = current(s)
    return sc.national or unit_of(s, row) in sc.units


def integrity_allowed(s: Session, session_id: str) -> bool:
    """May the logged-in user read the witnessed heads of `session_id`? A session the server knows only by
    witnessed heads (no header yet) is in the unit of the room its owning station is enrolled for."""
    sc = current(s)
    if sc.role not in ROLES[Need.INTEGRITY]:
        return False
    if sc.national or sc.role in EVERY_SESSION.get(Need.INTEGRITY, ()):
        return True
    row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == session_id)).first()
    if row is not None:
        return allows(sc, Need.INTEGRITY, unit_of(s, row), row.case_number)
    owner_unit = s.scalar(select(func.coalesce(Room.unit_id, Site.unit_id))
                          .select_from(SessionOwner).join(Station, Station.id == SessionOwner.station_pk)
                          .join(Room, Room.id == Station.room_id).join(Site, Site.id == Room.site_id)
                          .where(SessionOwner.session_id == session_id))
    return allows(sc, Need.INTEGRITY, owner_unit, "")


# --- outside parties ----------------------------------------------------------------------------------

SHARES_KEY = "shares"
"""Cookie key: {share id: code hash} of the shares unlocked with their access code in this browser."""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


def check_live(share: Share, now_us: int) -> None:
    """403 once a share has ended: revoked, or its time ran out."""
    if share.revoked_at_us is not None:
        raise Forbidden(f"share {share.id} was revoked")
    if now_us >= share.expires_at_us:
        raise Forbidden(f"share {share.id} has ended (its time ran out)")


def share_by_code(s: Session, code: str) -> Share:
    """The share an access code names (404 for an unknown code), live or not."""
    share = s.scalars(select(Share).where(Share.code_hash == code_hash(code))).first()
    if share is None:
        raise NotFound("no share has this access code")
    return share


def share_for(s: Session, share_id: int, want: str | None, now_us: int) -> tuple[Share, RecordingSession]:
    """The share (unlocked in this browser, not ended, allowing `want`: replay | export | None for its
    landing page) and its session."""
    unlocked = dict(session.get(SHARES_KEY, {}))
    share = s.get(Share, share_id)
    if share is None or unlocked.get(str(share_id)) != share.code_hash:
        raise Forbidden(f"share {share_id} is not open in this browser: open the link with its access code first")
    check_live(share, now_us)
    if want is not None and want not in share.allow.split("+"):
        raise Forbidden(f"share {share_id} does not allow {want}")
    row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == share.session_id)).first()
    if row is None:
        raise NotFound(f"no session {share.session_id}")
    return share, row
