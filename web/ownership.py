"""Which station owns a session: a station speaks only for its own room and sessions (issue 12).

The owner of a session is the station that signed its header (`sessions.header_known`, whose
`station_id` the header named and the enrolled key verified); before the header arrives, the first
station to claim the session (`session_owners`), by a witnessed head in a heartbeat or by an event.
A head or an event from any other station is refused (403, `ForeignClaim`) and the refusal audited;
nothing of the refused request is stored. Events name a site and room: only the station's own.

The heartbeat batch decides ownership in its own statements (web/heartbeat); `OWNER_SQL` is the
same rule for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from web import audit
from web.errors import ForeignClaim

OWNER_SQL = (
    "SELECT o.id, o.station_id, 0 AS rank FROM sessions s JOIN stations o ON o.station_id = s.station_id "
    "WHERE s.session_id = :sid AND s.header_known "
    "UNION ALL SELECT o.id, o.station_id, 1 AS rank FROM session_owners c JOIN stations o ON o.id = c.station_pk "
    "WHERE c.session_id = :sid ORDER BY rank LIMIT 1")
"""The owner of session :sid as (station pk, station id, rank): the header's station first, else the claimant."""

CLAIM_SQL = ("INSERT INTO session_owners (session_id, station_pk, claimed_us) VALUES (:sid, :pk, :now) "
             "ON CONFLICT (session_id) DO NOTHING")

FOREIGN_SESSION = "station.foreign_session"
FOREIGN_ROOM = "station.foreign_room"


@dataclass(frozen=True)
class Owner:
    pk: int
    station_id: str


def owner_of(s: Session, session_id: str) -> Owner | None:
    row = s.execute(text(OWNER_SQL), {"sid": session_id}).first()
    return None if row is None else Owner(int(row[0]), str(row[1]))


def claim(s: Session, session_id: str, station_pk: int, now_us: int) -> Owner:
    """The session's owner, `station_pk` if nobody owned it (its claim is then stored with the transaction)."""
    owner = owner_of(s, session_id)
    if owner is None:
        s.execute(text(CLAIM_SQL), {"sid": session_id, "pk": station_pk, "now": now_us})
        owner = owner_of(s, session_id)
    assert owner is not None
    return owner


def foreign_session(station_id: str, session_id: str, owner: str, what: str,
                    detail: dict[str, object] | None = None) -> ForeignClaim:
    return ForeignClaim(f"session {session_id} belongs to station {owner}, not {station_id}: {what} refused",
                        action=FOREIGN_SESSION, actor=f"station:{station_id}", target=session_id,
                        detail={"owner": owner, "refused": what, **(detail or {})})


def foreign_room(station_id: str, session_id: str, enrolled_for: str, named: str, kind: str) -> ForeignClaim:
    return ForeignClaim(f"station {station_id} is enrolled for {enrolled_for}, not {named}: "
                        f"{kind} event of session {session_id} refused",
                        action=FOREIGN_ROOM, actor=f"station:{station_id}", target=session_id,
                        detail={"enrolled_for": enrolled_for, "named": named, "kind": kind})


def audit_entry(err: ForeignClaim, now_us: int) -> audit.Pending:
    return audit.Pending(now_us, err.actor, err.action, err.target, err.detail)


def record_refusal(s: Session, err: ForeignClaim, now_us: int) -> None:
    """Undo the refused request and keep only its audit entry (committed)."""
    s.rollback()
    audit.append(s, at_us=now_us, actor=err.actor, action=err.action, target=err.target, detail=err.detail)
    s.commit()
