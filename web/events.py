"""Session events from stations (`POST /api/v1/sessions/events`, format irms.session-events/1).

Signed like heartbeats (evidence.request_auth; the same refusals: 401 unknown station, bad
signature or stale, 403 revoked, 409 replayed nonce, 400 malformed). Each event is stored
append-only, numbered by the station's queue (`seq`), so an event sent twice (an answer lost
on the way back) is kept once. The start event carries the session header; it is taken as the
case metadata only if the station's enrolled key signed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from evidence.errors import FormatError, SignatureError
from evidence.formats import HEADER_FORMAT, check_document
from evidence.keys import verify_document
from web.errors import BadRequest, Conflict
from web.models import SessionEvent
from web.recordings import apply_event, apply_header, get_or_create
from web.stations import StationRef, _insert_ignore, _public_key, parse_body

SESSION_ID = r"^[0-9A-Za-z][0-9A-Za-z-]{7,63}$"
CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class EventItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int = Field(ge=1)
    session_id: str = Field(pattern=SESSION_ID)
    site: str = Field(pattern=CODE)
    room: str = Field(pattern=CODE)
    at_us: int = Field(ge=0)
    kind: str = Field(min_length=1, max_length=32)
    detail: str = Field(default="", max_length=4000)
    header: dict[str, Any] | None = None


class EventsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["irms.session-events/1"]
    station_id: str
    sent_at_us: int
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
    accepted = duplicates = 0
    touched: list[str] = []
    for ev in body.events:
        row = get_or_create(s, ev.session_id, now_us)
        if row.station_id and row.station_id != station.station_id:
            raise Conflict(f"session {ev.session_id} belongs to station {row.station_id}")
        fresh = _insert_ignore(s, SessionEvent.__table__, {
            "station_pk": station.pk, "session_id": ev.session_id, "seq": ev.seq, "site": ev.site, "room": ev.room,
            "at_us": ev.at_us, "kind": ev.kind, "detail": ev.detail, "received_us": now_us})
        if not fresh:
            duplicates += 1
            continue
        accepted += 1
        row.station_id = station.station_id
        if ev.header is not None and not row.header_known:
            _take_header(row, ev.header, station)
        apply_event(row, ev)
        row.updated_at_us = now_us
        if ev.session_id not in touched:
            touched.append(ev.session_id)
    s.flush()
    return EventsIngested(accepted, duplicates, touched)


def _take_header(row: Any, header: dict[str, Any], station: StationRef) -> None:
    try:
        check_document(header, HEADER_FORMAT, "session header")
        verify_document(header, _public_key(station.public_key), "session header")
    except (FormatError, SignatureError) as err:
        raise BadRequest(f"start event of session {row.session_id}: {err}") from None
    if header.get("session_id") != row.session_id or header.get("station_id") != station.station_id:
        raise BadRequest(f"start event of session {row.session_id} carries another session's header")
    apply_header(row, header)
