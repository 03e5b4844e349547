"""Retention, legal hold and lawful disposal: recordings kept exactly as long as the case needs, provably.

- **Case outcome** (`record_outcome`): a prosecutor in scope records the case's status (investigating,
  prosecuted, judgment, final, closed) with its date, and its category; "final" (or "closed" without a final
  judgment) fixes the day retention counts from.
- **Retention policies** (`add_policy`), set by admins per unit and case category: N years and days from the
  final judgment, or from the end of the recording (a fixed period). A session takes the policy of its unit,
  else of the nearest unit above; within a unit its case's category before the unit's catch-all ("").
- **Apply** (`apply`, `irms-web retention apply`): the retention of every object of each session is extended
  on the store to what its policy says (S3 Object Lock, the policy's mode); never shortened; idempotent.
- **Legal hold** (`place_hold`, `lift_hold`): on a session or every session of a case; an S3 Object Legal
  Hold on each object, so the store itself refuses deletion, and every disposal of a held session stops.
- **Disposal**: a session whose retention ended and that no hold covers may be proposed (`propose`), is
  approved by two different people (`approve`, neither the proposer), and executed (`execute_due`) once the
  undo window (`UNDO_DAYS`) has passed: its objects are removed from the store and a signed tombstone
  (evidence/tombstone.py) is kept for ever. Each step is an audit entry.

Who may do what (web/scope.py): outcomes, holds and approvals by a prosecutor who may read the content of the
case's sessions; approvals also by admins; policies and proposals by admins; the reports follow `Need.VIEW`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from evidence.canonical import canonical_json
from evidence.formats import locator_name
from evidence.tombstone import build_tombstone, tombstone_name
from storage.base import LockMode, ObjectStore
from storage.errors import ObjectNotFound, StoreError
from web import audit, scope
from web.errors import BadRequest, Conflict, NotFound
from web.models import (
    Case,
    CaseStatus,
    Disposal,
    DisposalState,
    LegalHold,
    RecordingSession,
    RetentionAnchor,
    RetentionPolicy,
    SessionSegment,
    SessionStatus,
    Tombstone,
    Unit,
)

UNDO_DAYS = 7
"""Days between the second approval and the removal of the objects: a hold or a person can still stop it."""
DAY_US = 86_400_000_000
OPEN = (DisposalState.PROPOSED.value, DisposalState.APPROVED.value)


class RetentionStatus(StrEnum):
    RECORDING = "recording"
    """Not ended: a fixed period has not started."""
    NO_POLICY = "no_policy"
    """No policy covers its unit and category: kept."""
    AWAITING_OUTCOME = "awaiting_outcome"
    """Kept until the judgment is final (or the case closed), then for the policy's period."""
    RETAINED = "retained"
    ENDED = "retention_ended"
    """Retention ended and no hold: disposal may be proposed."""
    HELD = "held"
    DISPOSAL = "disposal"
    """A disposal is proposed or approved."""
    DISPOSED = "disposed"


def us_of(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def dt_of(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC)


def add_period(start_us: int, years: int, days: int) -> int:
    """`start_us` plus whole calendar years (29 February becomes 28 February) and days."""
    start = dt_of(start_us)
    try:
        moved = start.replace(year=start.year + years)
    except ValueError:
        moved = start.replace(year=start.year + years, day=28)
    return us_of(moved + dt.timedelta(days=days))


# --- case outcome ----------------------------------------------------------------------------------------


def case_allowed(s: Session, sc: scope.Scope, case_number: str) -> bool:
    """May this person act on the case: a prosecutor who may read the content of one of its sessions (or has it
    assigned by name)."""
    if sc.role not in scope.ROLES[scope.Need.CONTENT]:
        return False
    if case_number in sc.cases or sc.national:
        return True
    rows = list(s.scalars(select(RecordingSession).where(RecordingSession.case_number == case_number)))
    units = scope.units_of(s, rows)
    return any(scope.allows(sc, scope.Need.CONTENT, units.get(r.session_id), r.case_number) for r in rows)


def record_outcome(s: Session, *, case_number: str, status: str, at_us: int, category: str | None, actor: str,
                   now_us: int) -> Case:
    """The case's status since `at_us` (and its category, when given); an audit entry."""
    case_number = case_number.strip()
    if not case_number or len(case_number) > 200:
        raise BadRequest("case number: 1 to 200 characters")
    if status not in {c.value for c in CaseStatus}:
        raise BadRequest(f"case status {status!r} is not one of {', '.join(c.value for c in CaseStatus)}")
    if at_us > now_us:
        raise BadRequest(f"the date of status {status} is in the future")
    category = None if category is None else category.strip()
    if category is not None and len(category) > 64:
        raise BadRequest("case category: at most 64 characters")
    row = s.get(Case, case_number)
    if row is None:
        row = Case(case_number=case_number, category=category or "", status=status, status_at_us=at_us,
                   final_at_us=None, updated_by=actor, updated_at_us=now_us)
        s.add(row)
    row.status, row.status_at_us, row.updated_by, row.updated_at_us = status, at_us, actor, now_us
    if category is not None:
        row.category = category
    if status == CaseStatus.FINAL.value or (status == CaseStatus.CLOSED.value and row.final_at_us is None):
        row.final_at_us = at_us
    elif status in (CaseStatus.INVESTIGATING.value, CaseStatus.PROSECUTED.value, CaseStatus.JUDGMENT.value):
        row.final_at_us = None  # reopened (an appeal, a retrial): not final any more
    audit.append(s, at_us=now_us, actor=actor, action="case.outcome", target=case_number,
                 detail={"status": status, "at_us": at_us, "category": row.category})
    s.flush()
    return row


# --- policies --------------------------------------------------------------------------------------------


def add_policy(s: Session, *, unit: str | None, category: str, anchor: str, years: int, days: int, mode: str,
               actor: str, now_us: int) -> RetentionPolicy:
    """A policy for a unit (None: every unit) and category ("": every category); it replaces the one there was
    for the same unit and category (an audit entry says what it was)."""
    from web.units import unit_by_code
    if anchor not in {a.value for a in RetentionAnchor}:
        raise BadRequest(f"retention anchor {anchor!r} is not one of {', '.join(a.value for a in RetentionAnchor)}")
    mode = mode.upper()
    if mode not in {m.value for m in LockMode}:
        raise BadRequest(f"lock mode {mode!r} is not one of governance, compliance")
    if years < 0 or days < 0 or years > 1000 or days > 1_000_000:
        raise BadRequest("retention period: years 0..1000 and days 0..1000000")
    category = category.strip()
    if len(category) > 64:
        raise BadRequest("case category: at most 64 characters")
    unit_row = unit_by_code(s, unit) if unit else None
    unit_id = unit_row.id if unit_row else None
    old = s.scalars(select(RetentionPolicy).where(RetentionPolicy.unit_id.is_(None) if unit_id is None
                                                  else RetentionPolicy.unit_id == unit_id,
                                                  RetentionPolicy.category == category)).first()
    replaced = policy_json(s, old) if old is not None else None
    if old is not None:
        s.delete(old)
        s.flush()
    row = RetentionPolicy(unit_id=unit_id, category=category, anchor=anchor, years=years, days=days, mode=mode,
                          created_by=actor, created_at_us=now_us)
    s.add(row)
    s.flush()
    audit.append(s, at_us=now_us, actor=actor, action="retention.policy", target=unit or "*",
                 detail={"policy": policy_json(s, row), "replaced": replaced})
    return row


def policy_json(s: Session, p: RetentionPolicy) -> dict[str, Any]:
    unit = s.get(Unit, p.unit_id) if p.unit_id is not None else None
    return {"id": p.id, "unit": unit.code if unit else "", "category": p.category, "anchor": p.anchor,
            "years": p.years, "days": p.days, "mode": p.mode}


def describe(p: dict[str, Any]) -> str:
    period = " ".join(x for x in (f"{p['years']} y" if p["years"] else "", f"{p['days']} d" if p["days"] else "")
                      if x) or "0 d"
    start = "final judgment" if p["anchor"] == RetentionAnchor.FINAL.value else "end of recording"
    return f"{period} after the {start} ({p['unit'] or 'every unit'}, {p['category'] or 'any category'}, {p['mode']})"


# --- what each session's retention is ---------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    row: RecordingSession
    unit: int | None
    status: RetentionStatus
    until_us: int | None
    """When its retention ends (None: not known yet, or no policy)."""
    policy: dict[str, Any] | None
    held: bool


@dataclass
class Book:
    """Everything retention decisions need, read once: cases, policies, holds, open disposals, the unit tree."""

    cases: dict[str, Case]
    policies: dict[tuple[int | None, str], RetentionPolicy]
    parents: dict[int, int | None]
    held_sessions: set[str]
    held_cases: set[str]
    open_disposals: dict[str, Disposal]
    policy_docs: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, s: Session) -> Book:
        holds = list(s.scalars(select(LegalHold).where(LegalHold.lifted_at_us.is_(None))))
        book = cls(cases={c.case_number: c for c in s.scalars(select(Case))},
                   policies={(p.unit_id, p.category): p for p in s.scalars(select(RetentionPolicy))},
                   parents={int(u): p for u, p in s.execute(select(Unit.id, Unit.parent_id))},
                   held_sessions={h.session_id for h in holds if h.session_id},
                   held_cases={h.case_number for h in holds if h.case_number},
                   open_disposals={d.session_id: d for d in s.scalars(select(Disposal).where(
                       Disposal.state.in_(OPEN)))})
        book.policy_docs = {p.id: policy_json(s, p) for p in book.policies.values()}
        return book

    def policy_for(self, unit: int | None, category: str) -> RetentionPolicy | None:
        seen: set[int] = set()
        at = unit
        while True:
            for cat in ((category, "") if category else ("",)):
                found = self.policies.get((at, cat))
                if found is not None:
                    return found
            if at is None or at in seen:
                return None
            seen.add(at)
            at = self.parents.get(at)

    def held(self, row: RecordingSession) -> bool:
        return row.session_id in self.held_sessions or (bool(row.case_number) and row.case_number in self.held_cases)

    def view(self, row: RecordingSession, unit: int | None, now_us: int) -> View:
        case = self.cases.get(row.case_number) if row.case_number else None
        policy = self.policy_for(unit, case.category if case else "")
        doc = self.policy_docs.get(policy.id) if policy is not None else None
        held = self.held(row)
        until: int | None = None
        if policy is not None:
            if policy.anchor == RetentionAnchor.RECORDED.value:
                end = row.ended_at_us if row.status == SessionStatus.ENDED.value else None
                until = add_period(end, policy.years, policy.days) if end is not None else None
            elif case is not None and case.final_at_us is not None:
                until = add_period(case.final_at_us, policy.years, policy.days)
        if row.disposed_at_us is not None:
            status = RetentionStatus.DISPOSED
        elif held:
            status = RetentionStatus.HELD
        elif row.session_id in self.open_disposals:
            status = RetentionStatus.DISPOSAL
        elif policy is None:
            status = RetentionStatus.NO_POLICY
        elif until is None:
            status = (RetentionStatus.RECORDING if policy.anchor == RetentionAnchor.RECORDED.value
                      else RetentionStatus.AWAITING_OUTCOME)
        else:
            status = RetentionStatus.ENDED if until <= now_us else RetentionStatus.RETAINED
        return View(row, unit, status, until, doc, held)


def views(s: Session, rows: list[RecordingSession], now_us: int, book: Book | None = None) -> list[View]:
    book = book or Book.read(s)
    units = scope.units_of(s, rows)
    return [book.view(r, units.get(r.session_id), now_us) for r in rows]


def view_of(s: Session, row: RecordingSession, now_us: int) -> View:
    return views(s, [row], now_us)[0]


# --- the store ---------------------------------------------------------------------------------------------


def objects_of(store: ObjectStore, row: RecordingSession) -> list[str]:
    """Every object of a session in the store: those under its prefix, and its locator."""
    names = list(store.list(row.prefix)) if row.prefix else []
    if store.exists(locator_name(row.session_id)):
        names.append(locator_name(row.session_id))
    return names


@dataclass
class ApplyResult:
    sessions: int = 0
    extended: int = 0
    """Objects whose lock was extended now."""
    kept: int = 0
    """Objects already locked as long or longer (never shortened)."""
    held: int = 0
    """Objects given the legal hold their session's hold asks for."""
    errors: list[str] = field(default_factory=list)


def apply(s: Session, store: ObjectStore, now_us: int) -> ApplyResult:
    """Extend every live session's objects to the retention its policy gives (and place the holds in force) on
    the store; idempotent, never shortens. Each session commits on its own."""
    res = ApplyResult()
    book = Book.read(s)
    rows = list(s.scalars(select(RecordingSession).where(RecordingSession.disposed_at_us.is_(None))
                          .order_by(RecordingSession.id)))
    for v in views(s, rows, now_us, book):
        wants_lock = v.until_us is not None and v.until_us > now_us and v.policy is not None
        if not wants_lock and not v.held:
            continue
        res.sessions += 1
        try:
            names = objects_of(store, v.row)
            for name in names:
                if wants_lock:
                    assert v.until_us is not None and v.policy is not None
                    current = store.retention(name)
                    if current is not None and us_of(current.until) >= v.until_us:
                        res.kept += 1
                    else:
                        store.set_retention(name, dt_of(v.until_us), LockMode(v.policy["mode"]))
                        res.extended += 1
                if v.held and not store.legal_hold(name):
                    store.set_legal_hold(name, True)
                    res.held += 1
        except StoreError as err:
            res.errors.append(f"session {v.row.session_id}: {err}")
            continue
        if wants_lock and v.until_us is not None and names and (v.row.retain_until_us or 0) < v.until_us:
            v.row.retain_until_us = v.until_us
            audit.append(s, at_us=now_us, actor="retention", action="retention.apply", target=v.row.session_id,
                         detail={"until_us": v.until_us, "policy": v.policy, "objects": len(names)})
        s.commit()
    return res


# --- legal holds -------------------------------------------------------------------------------------------


def sessions_of_hold(s: Session, hold: LegalHold) -> list[RecordingSession]:
    if hold.session_id:
        return list(s.scalars(select(RecordingSession).where(RecordingSession.session_id == hold.session_id)))
    return list(s.scalars(select(RecordingSession).where(RecordingSession.case_number == hold.case_number)))


def _set_holds(store: ObjectStore, rows: Iterable[RecordingSession], on: bool) -> int:
    if not store.enforces_retention:
        return 0  # the file store keeps no hold: IRMS's own refusal is all there is (docs/operations.md)
    done = 0
    for row in rows:
        if row.disposed_at_us is not None:
            continue
        for name in objects_of(store, row):
            store.set_legal_hold(name, on)
            done += 1
    return done


def place_hold(s: Session, store: ObjectStore, *, session_id: str = "", case_number: str = "", reason: str,
               actor: str, now_us: int) -> LegalHold:
    """A hold on one session or on every session of a case: S3 legal hold on each object, and every open
    disposal of those sessions stopped."""
    if bool(session_id) == bool(case_number):
        raise BadRequest("a hold names one session or one case")
    if len(reason) > 2000:
        raise BadRequest("hold reason: at most 2000 characters")
    hold = LegalHold(session_id=session_id, case_number=case_number.strip(), reason=reason.strip(),
                     placed_by=actor, placed_at_us=now_us, lifted_by="", lifted_at_us=None)
    rows = sessions_of_hold(s, hold)
    if not rows:
        raise NotFound(f"no session {session_id}" if session_id else f"no session of case {case_number}")
    objects = _set_holds(store, rows, True)
    s.add(hold)
    s.flush()
    audit.append(s, at_us=now_us, actor=actor, action="hold.place", target=session_id or case_number,
                 detail={"hold": hold.id, "sessions": [r.session_id for r in rows], "objects": objects,
                         "store_enforces": store.enforces_retention})
    for d in list(s.scalars(select(Disposal).where(Disposal.session_id.in_([r.session_id for r in rows]),
                                                   Disposal.state.in_(OPEN)))):
        stop(s, d, actor=actor, reason=f"legal hold {hold.id}", now_us=now_us)
    return hold


def lift_hold(s: Session, store: ObjectStore, hold: LegalHold, *, actor: str, now_us: int) -> None:
    """Lift a hold; the store's legal hold stays on sessions another hold in force still covers."""
    if hold.lifted_at_us is not None:
        raise Conflict(f"hold {hold.id} was already lifted")
    hold.lifted_by, hold.lifted_at_us = actor, now_us
    s.flush()
    book = Book.read(s)
    free = [r for r in sessions_of_hold(s, hold) if not book.held(r)]
    objects = _set_holds(store, free, False)
    audit.append(s, at_us=now_us, actor=actor, action="hold.lift", target=hold.session_id or hold.case_number,
                 detail={"hold": hold.id, "released": [r.session_id for r in free], "objects": objects})


def hold_allowed(s: Session, sc: scope.Scope, hold: LegalHold) -> bool:
    if hold.session_id:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == hold.session_id)).first()
        return row is not None and scope.allows(sc, scope.Need.CONTENT, scope.unit_of(s, row), row.case_number)
    return case_allowed(s, sc, hold.case_number)


# --- disposal ----------------------------------------------------------------------------------------------


def propose(s: Session, *, actor: str, now_us: int, session_ids: Iterable[str] | None = None) -> list[Disposal]:
    """Propose the disposal of every session (or of those named) whose retention ended and that no hold covers."""
    stmt = select(RecordingSession).where(RecordingSession.disposed_at_us.is_(None))
    if session_ids is not None:
        stmt = stmt.where(RecordingSession.session_id.in_(list(session_ids)))
    out = []
    for v in views(s, list(s.scalars(stmt.order_by(RecordingSession.id))), now_us):
        if v.status != RetentionStatus.ENDED or v.until_us is None or v.policy is None:
            continue
        d = Disposal(session_id=v.row.session_id, state=DisposalState.PROPOSED.value, retain_until_us=v.until_us,
                     policy=canonical_json(v.policy).decode("utf-8"), proposed_by=actor, proposed_at_us=now_us,
                     first_approver="", second_approver="", stopped_by="", stop_reason="", last_error="")
        s.add(d)
        s.flush()
        audit.append(s, at_us=now_us, actor=actor, action="disposal.propose", target=v.row.session_id,
                     detail={"disposal": d.id, "until_us": v.until_us, "policy": v.policy})
        out.append(d)
    return out


def _still_due(s: Session, d: Disposal, now_us: int) -> str | None:
    """Why a disposal may not go on (a hold, a retention that is longer now), or None."""
    row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == d.session_id)).first()
    if row is None:
        return f"no session {d.session_id}"
    book = Book.read(s)
    if book.held(row):
        return "a legal hold covers the session"
    v = book.view(row, scope.unit_of(s, row), now_us)
    if v.until_us is None or v.until_us > now_us:
        return "its retention has not ended (the policy or the case changed)"
    return None


def approve(s: Session, d: Disposal, *, actor: str, now_us: int) -> Disposal:
    """One of the two approvals, by someone other than the proposer and the first approver."""
    if d.state != DisposalState.PROPOSED.value:
        raise Conflict(f"disposal {d.id} is {d.state}: only a proposed disposal is approved")
    if actor == d.proposed_by:
        raise Conflict(f"disposal {d.id}: who proposed it may not approve it (four eyes)")
    if actor == d.first_approver:
        raise Conflict(f"disposal {d.id}: already approved by {actor}; a second, different person must approve")
    why = _still_due(s, d, now_us)
    if why is not None:
        stop(s, d, actor=actor, reason=why, now_us=now_us)
        raise Conflict(f"disposal {d.id} stopped: {why}")
    if not d.first_approver:
        d.first_approver, d.first_approved_us, n = actor, now_us, 1
    else:
        d.second_approver, d.second_approved_us, n = actor, now_us, 2
        d.state = DisposalState.APPROVED.value
        d.execute_after_us = now_us + UNDO_DAYS * DAY_US
    audit.append(s, at_us=now_us, actor=actor, action="disposal.approve", target=d.session_id,
                 detail={"disposal": d.id, "approval": n, "execute_after_us": d.execute_after_us})
    s.flush()
    return d


def stop(s: Session, d: Disposal, *, actor: str, reason: str, now_us: int) -> None:
    if d.state not in OPEN:
        raise Conflict(f"disposal {d.id} is {d.state}: nothing to stop")
    d.state, d.stopped_by, d.stopped_at_us, d.stop_reason = DisposalState.STOPPED.value, actor, now_us, reason
    audit.append(s, at_us=now_us, actor=actor, action="disposal.stop", target=d.session_id,
                 detail={"disposal": d.id, "reason": reason})
    s.flush()


@dataclass
class ExecuteResult:
    executed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def execute_due(s: Session, store: ObjectStore, key: Ed25519PrivateKey, now_us: int) -> ExecuteResult:
    """Execute the approved disposals whose undo window has passed; each commits on its own. A hold (or a
    longer retention) found now stops the disposal instead; an object the store refuses to delete leaves the
    disposal approved, with the error, for the next run."""
    res = ExecuteResult()
    due = list(s.scalars(select(Disposal).where(Disposal.state == DisposalState.APPROVED.value,
                                                Disposal.execute_after_us <= now_us).order_by(Disposal.id)))
    for d in due:
        why = _still_due(s, d, now_us)
        if why is not None:
            stop(s, d, actor="retention", reason=why, now_us=now_us)
            s.commit()
            res.stopped.append(f"{d.session_id}: {why}")
            continue
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == d.session_id)).one()
        try:
            names = objects_of(store, row)
            for name in names:
                with contextlib.suppress(ObjectNotFound):  # removed by an earlier run that did not finish
                    store.delete(name)
        except StoreError as err:
            d.last_error = str(err)
            s.commit()
            res.errors.append(f"{d.session_id}: {err}")
            continue
        doc = build_tombstone(
            session_id=row.session_id, station_id=row.station_id, site=row.site, room=row.room,
            manifest_sha256=row.manifest_sha256, segment_count=row.segment_count or 0, objects=len(names),
            disposed_at_us=now_us, retain_until_us=d.retain_until_us, policy=json.loads(d.policy),
            proposed={"by": d.proposed_by, "at_us": d.proposed_at_us},
            approved=[{"by": d.first_approver, "at_us": d.first_approved_us},
                      {"by": d.second_approver, "at_us": d.second_approved_us}], key=key)
        data = canonical_json(doc)
        try:
            store.put(tombstone_name(row.session_id), data)
        except StoreError as err:
            res.errors.append(f"{d.session_id}: objects removed, tombstone not written to the store ({err}); "
                              "it is kept in the database")
        s.add(Tombstone(session_id=row.session_id, disposal_id=d.id, document=data.decode("utf-8"), at_us=now_us))
        s.execute(delete(SessionSegment).where(SessionSegment.session_pk == row.id))
        row.disposed_at_us, row.updated_at_us = now_us, now_us
        d.state, d.executed_at_us, d.last_error = DisposalState.EXECUTED.value, now_us, ""
        audit.append(s, at_us=now_us, actor="retention", action="disposal.execute", target=row.session_id,
                     detail={"disposal": d.id, "objects": len(names),
                             "tombstone_sha256": hashlib.sha256(data).hexdigest()})
        s.commit()
        res.executed.append(row.session_id)
    return res


def disposal_by_id(s: Session, disposal_id: int) -> Disposal:
    d = s.get(Disposal, disposal_id)
    if d is None:
        raise NotFound(f"no disposal {disposal_id}")
    return d


def holds_in_force(s: Session) -> list[LegalHold]:
    return list(s.scalars(select(LegalHold).where(LegalHold.lifted_at_us.is_(None)).order_by(LegalHold.id)))


def tombstones(s: Session) -> list[Tombstone]:
    return list(s.scalars(select(Tombstone).order_by(Tombstone.id)))


def session_holds(s: Session, row: RecordingSession) -> list[LegalHold]:
    cond = LegalHold.session_id == row.session_id
    if row.case_number:
        cond = or_(cond, LegalHold.case_number == row.case_number)
    return list(s.scalars(select(LegalHold).where(cond, LegalHold.lifted_at_us.is_(None)).order_by(LegalHold.id)))
