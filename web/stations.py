"""Stations: enrollment codes, enrollment, revocation (R16).

A station's signed requests are authenticated in web/station_auth.py; its heartbeats are
web/heartbeat/, its session events web/events.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import FormatError
from evidence.formats import check_code
from evidence.keys import ed25519_public_from_raw, key_id
from web import audit
from web.errors import BadRequest, Conflict, NotFound, Unauthenticated
from web.models import EnrollmentCode, Room, Site, Station, StationStatus

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


# --- enrollment codes -----------------------------------------------------------------------------


def normalise_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode("ascii")).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def issue_code(s: Session, *, site: Site, room: Room | None, actor: str, now_us: int, ttl_s: int) -> str:
    """A one-time code (80 bits) for enrolling a station into `site` (and `room`); stored hashed."""
    if room is not None and room.site_id != site.id:
        raise BadRequest(f"room {room.code} is not in site {site.code}")
    code = new_code()
    s.add(EnrollmentCode(code_hash=code_hash(code), site_id=site.id, room_id=room.id if room else None,
                         created_by=actor, created_at_us=now_us, expires_at_us=now_us + ttl_s * 1_000_000))
    audit.append(s, at_us=now_us, actor=actor, action="enrollment_code.issue",
                 target=f"{site.code}/{room.code}" if room else site.code,
                 detail={"expires_at_us": now_us + ttl_s * 1_000_000})
    return code


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["irms.enroll/1"] = "irms.enroll/1"
    code: str = Field(min_length=4, max_length=64)
    public_key: str
    station_id: str | None = None
    room: str | None = None
    hardware_profile: str = Field(default="", max_length=100)


Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""An integer a BIGINT column holds: every integer of a station's body is one (a larger one is a 400 at parsing,
never a failed insert that would take its whole heartbeat batch down with it)."""

_UNSTORABLE = re.compile(
    rb"\\u0000|\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
"""A JSON escape no database text holds: NUL (PostgreSQL refuses it) or half a surrogate pair (not UTF-8)."""


def parse_body(model: type[BaseModel], data: bytes, what: str) -> Any:
    """Validate a station's JSON body against `model`; the first problem is a 400 naming where it is."""
    if b"\\u" in data:  # fast path: most bodies carry no escapes at all
        bad = _UNSTORABLE.search(data)
        if bad is not None:
            raise BadRequest(f"{what}: text at byte {bad.start()} holds {bad.group().decode()}, which cannot be stored")
    try:
        return model.model_validate_json(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{what}: {loc}: {first['msg']}") from None


def enroll(s: Session, body: EnrollBody, now_us: int) -> Station:
    """Trade a one-time code and a public key for an enrolled station in the code's room."""
    try:
        raw = base64.b64decode(body.public_key.encode("ascii"), validate=True)
        ed25519_public_from_raw(raw, "public_key")
    except (binascii.Error, ValueError, UnicodeEncodeError, FormatError):
        raise BadRequest("public_key must be a base64 raw 32-byte Ed25519 public key") from None
    row = s.scalars(select(EnrollmentCode).where(EnrollmentCode.code_hash == code_hash(body.code))
                    .with_for_update()).first()
    if row is None:
        raise Unauthenticated("enrollment code is not valid")
    if row.used_at_us is not None:
        raise Conflict("enrollment code was already used")
    if row.expires_at_us < now_us:
        raise Unauthenticated("enrollment code has expired")
    site = s.get(Site, row.site_id)
    assert site is not None
    if row.room_id is not None:
        room = s.get(Room, row.room_id)
        assert room is not None
        if body.room is not None and body.room != room.code:
            raise BadRequest(f"this code enrolls a station for room {room.code}, not {body.room}")
    else:
        if body.room is None:
            raise BadRequest(f"this code is for site {site.code}: name the room (--room)")
        room = s.scalars(select(Room).where(Room.site_id == site.id, Room.code == body.room)).first()
        if room is None:
            raise NotFound(f"site {site.code} has no room {body.room}")
    sid = body.station_id or "st-" + key_id(raw)[:12]
    try:
        check_code(sid, "station id")
    except FormatError as err:
        raise BadRequest(str(err)) from None
    if s.scalars(select(Station).where(Station.station_id == sid)).first() is not None:
        raise Conflict(f"station id {sid} is already enrolled")
    for old in s.scalars(select(Station).where(Station.room_id == room.id,
                                               Station.status == StationStatus.ENROLLED.value)):
        old.status = StationStatus.REVOKED.value
        old.revoked_at_us = now_us
        old.revoked_reason = f"replaced by {sid}"
        audit.append(s, at_us=now_us, actor=f"station:{sid}", action="station.replace", target=old.station_id,
                     detail={"room": f"{site.code}/{room.code}"})
    station = Station(station_id=sid, public_key=body.public_key, status=StationStatus.ENROLLED.value,
                      hardware_profile=body.hardware_profile, room_id=room.id, enrolled_at_us=now_us)
    s.add(station)
    row.used_at_us = now_us
    row.used_by_station = sid
    audit.append(s, at_us=now_us, actor=f"station:{sid}", action="station.enroll", target=sid,
                 detail={"room": f"{site.code}/{room.code}", "key_id": key_id(raw),
                         "hardware_profile": body.hardware_profile})
    s.flush()
    return station


def revoke(s: Session, station: Station, *, actor: str, reason: str, now_us: int) -> None:
    if station.status == StationStatus.REVOKED.value:
        raise Conflict(f"station {station.station_id} is already revoked")
    station.status = StationStatus.REVOKED.value
    station.revoked_at_us = now_us
    station.revoked_reason = reason
    audit.append(s, at_us=now_us, actor=actor, action="station.revoke", target=station.station_id,
                 detail={"reason": reason})
