"""Stations: enrollment codes, enrollment, revocation, and signed heartbeat ingest (R08, R16)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence.errors import FormatError, IrmsError, SignatureError
from evidence.formats import check_code
from evidence.keys import ed25519_public_from_raw, key_id
from evidence.request_auth import parse_request_headers, verify_request
from web import audit
from web.coverage import HeartbeatFacts, Probe, Reason
from web.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthenticated
from web.models import EnrollmentCode, Room, Site, Station, StationStatus, WitnessedHead

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


def parse_body(model: type[BaseModel], data: bytes, what: str) -> Any:
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


# --- signed requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StationRef:
    """The columns of a station the heartbeat path needs, read in one query."""

    pk: int
    station_id: str
    public_key: str
    status: str
    room_id: int | None
    last_seen_us: int | None
    last_span_id: int | None
    span_start_us: int | None
    span_end_us: int | None


@functools.lru_cache(maxsize=65536)
def _public_key(b64_key: str) -> Ed25519PublicKey:
    return ed25519_public_from_raw(base64.b64decode(b64_key), "station key")


def _insert_ignore(s: Session, table: Any, values: dict[str, Any]) -> bool:
    """INSERT that does nothing on a unique conflict; True if the row went in (one round trip)."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        try:
            with s.begin_nested():
                s.execute(insert(table).values(**values))
            return True
        except IntegrityError:
            return False
    stmt = dialect_insert(table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return s.execute(stmt).first() is not None


def authenticate(s: Session, headers: Mapping[str, str], method: str, path: str, body: bytes, now_us: int,
                 window_s: int) -> StationRef:
    """The station behind a signed request, or the refusal with its status (401, 403, 409).

    One round trip on PostgreSQL: the station row (locked until commit, so two requests of one station
    advance its uptime span one after the other) and the nonce, inserted at once. A refused request is
    rolled back, so a nonce is only kept with the request it came with.
    """
    try:
        req = parse_request_headers(headers)
    except FormatError as err:
        raise Unauthenticated(str(err)) from None
    found = _station_and_nonce(s, req.station_id, req.nonce, now_us)
    if found is None:
        raise Unauthenticated(f"unknown station {req.station_id}")
    station, nonce_fresh = found
    try:
        verify_request(_public_key(station.public_key), headers, method, path, body, now_us // 1_000_000,
                       window_s)
    except (SignatureError, FormatError) as err:
        raise Unauthenticated(str(err)) from None
    if station.status == StationStatus.REVOKED.value:
        raise Forbidden(f"station {station.station_id} is revoked")
    if not nonce_fresh:
        raise Conflict("request nonce was already used (replay)")
    return station


# The heartbeat path runs a few fixed statements thousands of times a second: they go straight to the
# driver (written with :name parameters), skipping the ORM's statement building, which cost more CPU
# than the database did. PostgreSQL gets them merged into one statement each (data-modifying CTEs).

_STATION_SQL = ("SELECT id, station_id, public_key, status, room_id, last_seen_us, last_span_id, span_start_us, "
                "span_end_us FROM stations WHERE station_id = :sid")
_NONCE_SQL = ("INSERT INTO nonces (station_pk, nonce, seen_us) VALUES (:pk, :nonce, :now) "
              "ON CONFLICT (station_pk, nonce) DO NOTHING RETURNING id")
_STATION_NONCE_PG = (f"WITH st AS ({_STATION_SQL} FOR UPDATE), "
                     "n AS (INSERT INTO nonces (station_pk, nonce, seen_us) SELECT id, :nonce, :now FROM st "
                     "ON CONFLICT (station_pk, nonce) DO NOTHING RETURNING id) "
                     "SELECT st.*, EXISTS (SELECT 1 FROM n) FROM st")
_PG_PARAMS: dict[str, str] = {}


def _execute(s: Session, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run one statement on the session's connection (its transaction); the first row, if any."""
    dbapi = s.connection().connection
    if s.get_bind().dialect.name == "postgresql":
        sql = _PG_PARAMS.get(sql) or _PG_PARAMS.setdefault(sql, re.sub(r":(\w+)", r"%(\1)s", sql))
    cur = dbapi.cursor()
    try:
        cur.execute(sql, params)
        row = cur.fetchone() if cur.description is not None else None
        return tuple(row) if row is not None else None
    finally:
        cur.close()


def _station_and_nonce(s: Session, station_id: str, nonce: str, now_us: int) -> tuple[StationRef, bool] | None:
    """The station row and whether `nonce` was new for it (and is now stored); None for an unknown station."""
    if s.get_bind().dialect.name == "postgresql":
        row = _execute(s, _STATION_NONCE_PG, {"sid": station_id, "nonce": nonce, "now": now_us})
        return None if row is None else (StationRef(*row[:-1]), bool(row[-1]))
    row = _execute(s, _STATION_SQL, {"sid": station_id})
    if row is None:
        return None
    station = StationRef(*row)
    fresh = _execute(s, _NONCE_SQL, {"pk": station.pk, "nonce": nonce, "now": now_us}) is not None
    return station, fresh


# --- heartbeats -----------------------------------------------------------------------------------------


class ProbeBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    check: str = Field(max_length=64)
    device: str = Field(default="", max_length=300)
    ok: bool
    reason: str = Field(default="", max_length=500)
    value: str | int | None = None
    unit: str = ""


class RecordingBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    session_id: str = Field(min_length=1, max_length=64)
    index: int = Field(ge=-1)
    chain_head: str = Field(pattern=r"^[0-9a-f]{64}$")


class SelftestBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    at_us: int
    ok: bool
    session_id: str | None = None


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    format: Literal["irms.heartbeat/1"]
    station_id: str
    sent_at_us: int = Field(gt=0)
    probes: list[ProbeBody] = Field(default_factory=list, max_length=100)
    disk_free_bytes: int | None = None
    clock_offset_ms: int | None = None
    store_ok: bool | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    recording: RecordingBody | None = None
    selftest: SelftestBody | None = None


def facts_of(body: HeartbeatBody, received_us: int) -> HeartbeatFacts:
    return HeartbeatFacts(
        sent_us=body.sent_at_us, received_us=received_us,
        probes=tuple(Probe(p.check, p.device, p.ok, p.reason) for p in body.probes),
        disk_free_bytes=body.disk_free_bytes, clock_offset_ms=body.clock_offset_ms, store_ok=body.store_ok,
        selftest_at_us=body.selftest.at_us if body.selftest else None,
        selftest_ok=body.selftest.ok if body.selftest else None)


def facts_from_body(body: str, sent_us: int, received_us: int, disk_free_bytes: int | None,
                    clock_offset_ms: int | None) -> HeartbeatFacts:
    """A stored heartbeat (validated at ingest) back into coverage's values, to be judged again."""
    data = json.loads(body)
    probes = tuple(Probe(str(p.get("check", "")), str(p.get("device", "")), bool(p.get("ok")),
                         str(p.get("reason", ""))) for p in data.get("probes", []))
    store_ok = data.get("store_ok")
    selftest = data.get("selftest") if isinstance(data.get("selftest"), dict) else {}
    return HeartbeatFacts(sent_us, received_us, probes, disk_free_bytes, clock_offset_ms,
                          store_ok if isinstance(store_ok, bool) else None,
                          selftest_at_us=selftest.get("at_us"), selftest_ok=selftest.get("ok"))


NO_REASONS: tuple[Reason, ...] = ()


def facts_from_verdict(sent_us: int, received_us: int, ok: bool, reasons_json: str) -> HeartbeatFacts:
    """A stored heartbeat with the verdict it was given at ingest (cheap: no body to parse)."""
    if ok:
        return HeartbeatFacts(sent_us, received_us, verdict=NO_REASONS)
    verdict = tuple(Reason(str(r.get("code", "")), tuple(sorted((k, str(v)) for k, v in r.items() if k != "code")))
                    for r in json.loads(reasons_json))
    return HeartbeatFacts(sent_us, received_us, verdict=verdict)


def witnessed_heads(s: Session, session_id: str) -> list[dict[str, object]]:
    """Every head witnessed for a session, one per index, in order (the `irms-verify --witness` file)."""
    rows = s.execute(select(WitnessedHead.idx, WitnessedHead.chain_head).where(
        WitnessedHead.session_id == session_id).order_by(WitnessedHead.idx, WitnessedHead.id)).all()
    out: list[dict[str, object]] = []
    seen: set[tuple[int, str]] = set()
    for idx, head in rows:
        # Index -1 is the genesis (no segment sealed yet); a conflicting claim for an index is kept.
        if idx < 0 or (idx, head) in seen:
            continue
        seen.add((idx, head))
        out.append({"index": int(idx), "chain": head})
    return out


def irms_error_json(err: IrmsError) -> dict[str, object]:
    return {"error": type(err).__name__, "status": err.http_status, "message": str(err)}
