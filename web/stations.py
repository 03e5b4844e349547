"""Stations: enrollment codes, enrollment, revocation, and signed heartbeat ingest (R08, R16)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import IrmsError
from verifier.errors import FormatError, SignatureError
from verifier.formats import check_code
from verifier.keys import ed25519_public_from_raw, key_id
from verifier.request_auth import parse_request_headers, verify_request
from web import audit
from web.coverage import HeartbeatFacts, Policy, Probe, Reason, advance_span, judge_heartbeat
from web.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthenticated
from web.models import EnrollmentCode, Heartbeat, Nonce, Room, Site, Station, StationStatus, UptimeSpan, WitnessedHead

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
HEARTBEAT_FORMAT = "irms.heartbeat/1"
ENROLL_FORMAT = "irms.enroll/1"


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


_STATION_COLS = (Station.id, Station.station_id, Station.public_key, Station.status, Station.room_id,
                 Station.last_seen_us, Station.last_span_id, Station.span_start_us, Station.span_end_us)


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
    """The station behind a signed request, or the refusal with its status (401, 403, 409)."""
    try:
        req = parse_request_headers(headers)
    except FormatError as err:
        raise Unauthenticated(str(err)) from None
    row = s.execute(select(*_STATION_COLS).where(Station.station_id == req.station_id)).first()
    if row is None:
        raise Unauthenticated(f"unknown station {req.station_id}")
    station = StationRef(*row)
    try:
        verify_request(_public_key(station.public_key), headers, method, path, body, now_us // 1_000_000,
                       window_s)
    except (SignatureError, FormatError) as err:
        raise Unauthenticated(str(err)) from None
    if station.status == StationStatus.REVOKED.value:
        raise Forbidden(f"station {station.station_id} is revoked")
    if not _insert_ignore(s, Nonce.__table__, {"station_pk": station.pk, "nonce": req.nonce, "seen_us": now_us}):
        raise Conflict("request nonce was already used (replay)")
    return station


def prune_nonces(s: Session, now_us: int, window_s: int) -> int:
    """Nonces older than twice the window can never be replayed successfully (the timestamp is stale)."""
    res = s.execute(delete(Nonce).where(Nonce.seen_us < now_us - 2 * window_s * 1_000_000))
    return int(getattr(res, "rowcount", 0) or 0)


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


@dataclass(frozen=True)
class Ingested:
    heartbeat_id: int
    ok: bool
    reasons: list[dict[str, object]]
    witnessed: bool


def ingest_heartbeat(s: Session, station: StationRef, raw_body: bytes, now_us: int,
                     policy: Policy) -> Ingested:
    """Store one authenticated heartbeat (append-only), its witnessed head, and advance the uptime span."""
    body: HeartbeatBody = parse_body(HeartbeatBody, raw_body, "heartbeat")
    if body.station_id != station.station_id:
        raise BadRequest(f"heartbeat names station {body.station_id}, but was signed by {station.station_id}")
    facts = facts_of(body, now_us)
    reasons = judge_heartbeat(facts, policy)
    reasons_json = [r.as_json() for r in reasons]
    hb_id = s.execute(insert(Heartbeat).values(
        station_pk=station.pk, received_us=now_us, sent_us=body.sent_at_us, ok=not reasons,
        reasons=json.dumps(reasons_json, ensure_ascii=False), disk_free_bytes=body.disk_free_bytes,
        clock_offset_ms=body.clock_offset_ms, body=raw_body.decode("utf-8")).returning(Heartbeat.id)).scalar_one()
    if body.recording is not None:
        s.execute(insert(WitnessedHead).values(
            station_pk=station.pk, session_id=body.recording.session_id, idx=body.recording.index,
            chain_head=body.recording.chain_head, received_us=now_us))
    changes: dict[str, Any] = {}
    if station.last_seen_us is None or station.last_seen_us <= facts.at_us:
        changes.update(last_heartbeat_id=hb_id, last_seen_us=facts.at_us)
    if station.room_id is not None:
        changes.update(_advance_span(s, station, facts.at_us, not reasons, policy))
    if changes:
        s.execute(update(Station).where(Station.id == station.pk).values(**changes))
    return Ingested(hb_id, not reasons, reasons_json, body.recording is not None)


def _advance_span(s: Session, station: StationRef, at_us: int, ok: bool, policy: Policy) -> dict[str, Any]:
    """Apply the span rule; returns the station columns that change (the open span lives on the station row)."""
    open_span = None
    if station.last_span_id is not None and station.span_start_us is not None and station.span_end_us is not None:
        open_span = (station.span_start_us, station.span_end_us)
    upd = advance_span(open_span, at_us, ok, policy)
    if upd.action == "extend":
        s.execute(update(UptimeSpan).where(UptimeSpan.id == station.last_span_id).values(end_us=upd.end_us))
        return {"span_end_us": upd.end_us}
    if upd.action == "close":
        s.execute(update(UptimeSpan).where(UptimeSpan.id == station.last_span_id)
                  .values(end_us=upd.end_us, closed=True))
        return {"span_start_us": None, "span_end_us": None}
    if upd.action == "open":
        if open_span is not None and open_span[1] <= at_us:
            s.execute(update(UptimeSpan).where(UptimeSpan.id == station.last_span_id).values(closed=True))
        span_id = s.execute(insert(UptimeSpan).values(
            station_pk=station.pk, room_id=station.room_id, start_us=upd.start_us, end_us=upd.end_us,
            closed=False).returning(UptimeSpan.id)).scalar_one()
        return {"last_span_id": span_id, "span_start_us": upd.start_us, "span_end_us": upd.end_us}
    return {}


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
