"""Session events from stations (`POST /api/v1/sessions/events`, format irms.session-events/1).

Signed like heartbeats (evidence.request_auth; the same refusals: 401 unknown station, bad
signature or stale, 403 revoked, 409 replayed nonce, 400 malformed). Each event is stored
append-only, numbered by the station's queue (`seq`), so an event sent twice (an answer lost
on the way back) is kept once. The start event carries the session header; it is taken as the
case metadata only if the station's enrolled key signed it.

A station speaks only for its own room and sessions (web/ownership.py): an event naming another
site or room, or a session another station owns, refuses the whole request with 403
(`ForeignClaim`, audited by the caller); the first event of a session claims it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Insert, Table, text
from sqlalchemy.orm import Session

from evidence.errors import FormatError, SignatureError
from evidence.formats import HEADER_FORMAT, check_document
from evidence.keys import verify_document
from web import ownership
from web.errors import BadRequest, Forbidden
from web.models import SessionEvent
from web.recordings import apply_event, apply_header, get_or_create
from web.station_auth import StationRef, public_key
from web.stations import Int64, parse_body

SESSION_ID = r"^[0-9A-Za-z][0-9A-Za-z-]{7,63}$"
CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class EventItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: Int64 = Field(ge=1)
    session_id: str = Field(pattern=SESSION_ID)
    site: str = Field(pattern=CODE)
    room: str = Field(pattern=CODE)
    at_us: Int64 = Field(ge=0)
    kind: str = Field(min_length=1, max_length=32)
    detail: str = Field(default="", max_length=4000)
    header: dict[str, Any] | None = None


class EventsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["irms.session-events/1"]
    station_id: str = Field(max_length=64)
    sent_at_us: Int64
    events: list[EventItem] = Field(max_length=1000)


@dataclass(frozen=True)
class EventsIngested:
    accepted: int
    duplicates: int
    sessions: list[str]


def ingest_events(s: Session, station: StationRef, raw: bytes, now_us: int) -> EventsIngested:
    body: EventsBody = parse_body(EventsBody, raw, "session events")
    if body.station_id != station.station_id:
        raise BadRequest(f"events name station {body.station_id}, but were signed by {station.station_id}")
    own = enrolled_for(s, station)
    accepted = duplicates = 0
    touched: list[str] = []
    for ev in body.events:
        if f"{ev.site}/{ev.room}" != own:
            raise ownership.foreign_room(station.station_id, ev.session_id, own, f"{ev.site}/{ev.room}", ev.kind)
        owner = ownership.claim(s, ev.session_id, station.pk, now_us)
        if owner.pk != station.pk:
            raise ownership.foreign_session(station.station_id, ev.session_id, owner.station_id,
                                            f"{ev.kind} event")
        row = get_or_create(s, ev.session_id, now_us)
        fresh = _insert_ignore(s, {
            "station_pk": station.pk, "session_id": ev.session_id, "seq": ev.seq, "site": ev.site, "room": ev.room,
            "at_us": ev.at_us, "kind": ev.kind, "detail": ev.detail, "received_us": now_us})
        if not fresh:
            duplicates += 1
            continue
        accepted += 1
        row.station_id = station.station_id
        if ev.header is not None and not row.header_known:
            _take_header(row, ev.header, station, own)
        apply_event(row, ev)
        row.updated_at_us = now_us
        if ev.session_id not in touched:
            touched.append(ev.session_id)
    s.flush()
    return EventsIngested(accepted, duplicates, touched)


def _insert_ignore(s: Session, values: dict[str, Any]) -> bool:
    """Store an event unless the station sent it before (same seq); True if it went in (one round trip)."""
    table = SessionEvent.__table__
    assert isinstance(table, Table)  # a declarative class with __tablename__ is mapped to a Table
    stmt: Insert
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        stmt = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    stmt = stmt.returning(*table.primary_key.columns)
    return s.execute(stmt).first() is not None


def enrolled_for(s: Session, station: StationRef) -> str:
    """The "site/room" a station is enrolled for."""
    found = s.execute(text("SELECT sites.code, rooms.code FROM rooms JOIN sites ON sites.id = rooms.site_id "
                           "WHERE rooms.id = :room"), {"room": station.room_id}).first()
    if found is None:
        raise Forbidden(f"station {station.station_id} is not enrolled for a room")
    return f"{found[0]}/{found[1]}"


def _take_header(row: Any, header: dict[str, Any], station: StationRef, own: str) -> None:
    try:
        check_document(header, HEADER_FORMAT, "session header")
        verify_document(header, public_key(station.public_key), "session header")
    except (FormatError, SignatureError) as err:
        raise BadRequest(f"start event of session {row.session_id}: {err}") from None
    if header.get("session_id") != row.session_id or header.get("station_id") != station.station_id:
        raise BadRequest(f"start event of session {row.session_id} carries another session's header")
    named = f"{header.get('site')}/{header.get('room')}"
    if named != own:
        raise ownership.foreign_room(station.station_id, row.session_id, own, named, "start (header)")
    apply_header(row, header)
