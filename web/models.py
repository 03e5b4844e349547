"""SQLAlchemy 2 typed models: everything the web knows.

Times are integer microseconds since the Unix epoch, UTC (as in the evidence
formats); pages convert them to Asia/Ho_Chi_Minh for display. Heartbeats,
witnessed chain heads and the audit log are append-only (database triggers
refuse UPDATE and DELETE, see the first migration).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class FacilityType(StrEnum):
    DETENTION_CENTRE = "detention_centre"
    TEMPORARY_DETENTION = "temporary_detention"
    INVESTIGATION_OFFICE = "investigation_office"
    PROCURACY = "procuracy"


class Role(StrEnum):
    INVESTIGATOR = "investigator"
    PROSECUTOR = "prosecutor"
    IT_STAFF = "it_staff"
    AUDITOR = "auditor"
    ADMIN = "admin"


class StationStatus(StrEnum):
    ENROLLED = "enrolled"
    REVOKED = "revoked"


class Province(Base):
    __tablename__ = "provinces"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    sites: Mapped[list[Site]] = relationship(back_populates="province", order_by="Site.code")


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    province_id: Mapped[int] = mapped_column(ForeignKey("provinces.id"), index=True)
    facility_type: Mapped[str] = mapped_column(String(32))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    """The unit whose sessions these are (web/scope.py); None: national users only."""
    province: Mapped[Province] = relationship(back_populates="sites")
    rooms: Mapped[list[Room]] = relationship(back_populates="site", order_by="Room.code")


class Room(Base):
    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("site_id", "code", name="uq_rooms_site_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    """A room's own unit, over its site's (a shared building); None: the site's unit."""
    site: Mapped[Site] = relationship(back_populates="rooms")


class UnitKind(StrEnum):
    NATIONAL = "national"
    PROVINCE = "province"
    REGION = "region"


class Unit(Base):
    """A procuracy jurisdiction: the national level, the 34 provincial units, their regional units (a tree).

    Sites and rooms belong to a unit; a user assigned to a unit sees the sessions of it and of every
    unit below it (web/scope.py)."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    created_at_us: Mapped[int] = mapped_column(BigInteger)


class UserUnit(Base):
    """A user's assignment to a unit; `personal_data` lets an auditor see personal data there."""

    __tablename__ = "user_units"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True, index=True)
    personal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_by: Mapped[str] = mapped_column(String(100))
    granted_at_us: Mapped[int] = mapped_column(BigInteger)


class CaseAssignment(Base):
    """A case assigned to a named prosecutor: its sessions are theirs, inside or outside their units."""

    __tablename__ = "case_assignments"
    case_number: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    granted_by: Mapped[str] = mapped_column(String(100))
    granted_at_us: Mapped[int] = mapped_column(BigInteger)


class ShareAllow(StrEnum):
    REPLAY = "replay"
    EXPORT = "export"
    BOTH = "replay+export"


class Share(Base):
    """One session shared with a named outside party until a time (web/shares.py).

    The access code is shown once; only its SHA-256 is kept. Rows are never deleted: a share
    ends by its time or by revocation."""

    __tablename__ = "shares"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[str] = mapped_column(String(64), index=True)
    party: Mapped[str] = mapped_column(String(200))
    party_kind: Mapped[str] = mapped_column(String(32))
    allow: Mapped[str] = mapped_column(String(16))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    """The session's seal when shared: what the party may check what they received against."""
    chain_head: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    expires_at_us: Mapped[int] = mapped_column(BigInteger)
    revoked_at_us: Mapped[int | None] = mapped_column(BigInteger)
    revoked_by: Mapped[str] = mapped_column(String(100), default="")
    server_markers: Mapped[bool] = mapped_column(Boolean, default=False)
    """The party also sees the prosecutors' own markers made up to the share's creation (never those made later)."""


class Station(Base):
    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[str] = mapped_column(String(64), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))
    """Raw Ed25519 public key, base64."""
    status: Mapped[str] = mapped_column(String(16), default=StationStatus.ENROLLED.value)
    hardware_profile: Mapped[str] = mapped_column(String(100), default="")
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"), index=True)
    enrolled_at_us: Mapped[int] = mapped_column(BigInteger)
    revoked_at_us: Mapped[int | None] = mapped_column(BigInteger)
    revoked_reason: Mapped[str] = mapped_column(String(300), default="")
    last_heartbeat_id: Mapped[int | None] = mapped_column(BigId)
    """Denormalised pointer to the newest heartbeat, so the dashboard need not scan history."""
    last_seen_us: Mapped[int | None] = mapped_column(BigInteger)
    """When the newest heartbeat's evidence holds (its `at_us`)."""
    last_span_id: Mapped[int | None] = mapped_column(BigId)
    span_start_us: Mapped[int | None] = mapped_column(BigInteger)
    span_end_us: Mapped[int | None] = mapped_column(BigInteger)
    """The open uptime span (`last_span_id`) as the heartbeat path needs it; both None when it is closed."""
    last_fail_us: Mapped[int | None] = mapped_column(BigInteger)
    """When the station's latest heartbeat that was not ok holds: a run claimed across it is refused."""
    room: Mapped[Room | None] = relationship()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    auth_source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    """Where the password is checked: `local` (password_hash) or `ldap` (a bind to the unit's directory)."""
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    """The TOTP secret (base32) once enrolled (web/twofactor.py); None: no second factor."""
    totp_pending: Mapped[str | None] = mapped_column(String(64))
    """A secret shown for enrolment, not yet confirmed with a code."""
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    """The time step of the last code accepted: a code of this step or before is refused (no replay)."""
    totp_enrolled_at_us: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """A one-time recovery code for the second factor: SHA-256 of a random code shown once at enrolment."""

    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    used_at_us: Mapped[int | None] = mapped_column(BigInteger)


class EnrollmentCode(Base):
    __tablename__ = "enrollment_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the normalised code; the code itself is shown once and never stored."""
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    expires_at_us: Mapped[int] = mapped_column(BigInteger)
    used_at_us: Mapped[int | None] = mapped_column(BigInteger)
    used_by_station: Mapped[str | None] = mapped_column(String(64))


class Heartbeat(Base):
    """One heartbeat as received (append-only)."""

    __tablename__ = "heartbeats"
    __table_args__ = (Index("ix_heartbeats_station_sent", "station_pk", "sent_us"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_pk: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    received_us: Mapped[int] = mapped_column(BigInteger)
    sent_us: Mapped[int] = mapped_column(BigInteger)
    ok: Mapped[bool] = mapped_column(Boolean)
    """The heartbeat's own verdict (probes, store, disk, clock) at ingest; freshness is judged later."""
    reasons: Mapped[str] = mapped_column(Text, default="[]")
    disk_free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    """The body exactly as received (UTF-8)."""
    signature: Mapped[str | None] = mapped_column(Text)
    """The signed request as received: canonical JSON {"path", "headers": {X-IRMS-Station, -Timestamp, -Nonce,
    -Signature}}, so the heartbeat can be verified again against its station's key (evidence/coverage_bundle.py).
    None for rows stored before migration 0005."""
    run_since_us: Mapped[int | None] = mapped_column(BigInteger)
    """The start of the station's run this heartbeat was credited for (`coverage.run_credit`); None: no credit.
    An export keeps only the last heartbeat of each run (docs/evidence-format.md, format 2)."""


class WitnessedHead(Base):
    """A chain head a station reported while recording (append-only): R08."""

    __tablename__ = "witnessed_heads"
    __table_args__ = (Index("ix_witnessed_session", "session_id", "idx"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_pk: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    session_id: Mapped[str] = mapped_column(String(64))
    idx: Mapped[int] = mapped_column(BigInteger)
    chain_head: Mapped[str] = mapped_column(String(64))
    received_us: Mapped[int] = mapped_column(BigInteger)


class SessionOwner(Base):
    """The first station to claim a session (a witnessed head or an event), before its header is known."""

    __tablename__ = "session_owners"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_pk: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    claimed_us: Mapped[int] = mapped_column(BigInteger)


class Nonce(Base):
    """Nonces of signed requests seen within the freshness window (replay protection)."""

    __tablename__ = "nonces"
    __table_args__ = (UniqueConstraint("station_pk", "nonce", name="uq_nonces_station_nonce"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_pk: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    nonce: Mapped[str] = mapped_column(String(32))
    seen_us: Mapped[int] = mapped_column(BigInteger, index=True)


class UptimeSpan(Base):
    """A stretch of time a station's heartbeats said its room was working (derived from heartbeats)."""

    __tablename__ = "uptime_spans"
    __table_args__ = (Index("ix_spans_end", "end_us"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_pk: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    """Append-only, hash-chained: hash = SHA-256(prev_hash || canonical JSON of the entry)."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at_us: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Unique: two writers can never both extend the same head (the chain cannot fork)."""
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditTimestamp(Base):
    """An RFC 3161 token over a signed audit head (web/audit_anchor.py), kept outside the audit log."""

    __tablename__ = "audit_timestamps"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    head: Mapped[str] = mapped_column(Text)
    """The signed head (canonical JSON) the token is over."""
    token: Mapped[bytes] = mapped_column(LargeBinary)
    at_us: Mapped[int] = mapped_column(BigInteger)


class LoginSession(Base):
    """A login (web/auth.py): the cookie carries a random token, this row its SHA-256 and whether it still holds.

    Logout, disabling the user and a password change or reset end it at once (`ended_at_us`)."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    last_seen_us: Mapped[int] = mapped_column(BigInteger)
    expires_at_us: Mapped[int] = mapped_column(BigInteger)
    ended_at_us: Mapped[int | None] = mapped_column(BigInteger)
    end_reason: Mapped[str] = mapped_column(String(32), default="")
    stage: Mapped[str] = mapped_column(String(8), default="", server_default="")
    """'' a full login; `code`: the password was right, the second factor is owed; `enrol`: enrolment is owed."""


class LoginFailure(Base):
    """A failed login, kept `login_window_s`: the throttle counts them per (username, address)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_user_ip", "username", "ip", "at_us"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    at_us: Mapped[int] = mapped_column(BigInteger)


class LoginRefusal(Base):
    """A login the throttle refused, kept as long as the failures: it bounds the audit of refusals to one per
    address between two counted failures (web/users.py `refuse_if_throttled`)."""

    __tablename__ = "login_refusals"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str] = mapped_column(String(64), index=True)
    at_us: Mapped[int] = mapped_column(BigInteger)


class SessionStatus(StrEnum):
    RECORDING = "recording"
    ENDED = "ended"


class RecordingSession(Base):
    """An interrogation session the server knows, from station events and/or the store (table `sessions`).

    Case metadata comes only from the station-signed header. The verification columns cache
    the last `verifier.session.audit` of the session (integrity rules, public keys only).
    """

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_started", "started_at_us"),
                      Index("ix_sessions_site_room", "site", "room"))
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    station_id: Mapped[str] = mapped_column(String(64), default="")
    site: Mapped[str] = mapped_column(String(64), default="")
    room: Mapped[str] = mapped_column(String(64), default="")
    case_number: Mapped[str] = mapped_column(String(200), default="", index=True)
    """The case the session belongs to: the signed header's, unless a prosecutor corrected it (case_corrected)."""
    case_number_filed: Mapped[str] = mapped_column(String(200), default="", server_default="")
    """The case number as typed at the station: the signed header's, never changed here."""
    case_corrected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """A prosecutor corrected the case number (`session.case_corrected` in the audit log says who, when and why)."""
    suspect: Mapped[str] = mapped_column(String(300), default="", index=True)
    interrogators: Mapped[str] = mapped_column(Text, default="[]")
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    started_at_us: Mapped[int | None] = mapped_column(BigInteger)
    ended_at_us: Mapped[int | None] = mapped_column(BigInteger)
    end_reason: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.RECORDING.value)
    prefix: Mapped[str] = mapped_column(String(300), default="")
    """Where its objects are in the store ({site}/{room}/{session}/)."""
    header_known: Mapped[bool] = mapped_column(Boolean, default=False)
    """True once the signed header (case metadata) was checked against the station's key or read from the store."""
    last_event_us: Mapped[int | None] = mapped_column(BigInteger)
    verification: Mapped[str] = mapped_column(String(16), default="")
    """Cached result: verified | unterminated | failed | "" (never verified)."""
    verification_findings: Mapped[str] = mapped_column(Text, default="[]")
    verified_at_us: Mapped[int | None] = mapped_column(BigInteger)
    segment_count: Mapped[int | None] = mapped_column(Integer)
    duration_us: Mapped[int | None] = mapped_column(BigInteger)
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    manifest: Mapped[str] = mapped_column(Text, default="")
    """The verified manifest (canonical JSON) for the timeline, empty until verified."""
    updated_at_us: Mapped[int] = mapped_column(BigInteger, default=0)
    retain_until_us: Mapped[int | None] = mapped_column(BigInteger)
    """The retention last applied to the session's objects in the store (web/retention.py); None: none yet."""
    disposed_at_us: Mapped[int | None] = mapped_column(BigInteger)
    """When its objects were removed from the store by a disposal (a tombstone remains)."""


class SessionSegment(Base):
    """The record of one segment of a verified session, cached so replay needs no store listing."""

    __tablename__ = "session_segments"
    session_pk: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    run: Mapped[int] = mapped_column(Integer)
    key_index: Mapped[int] = mapped_column(Integer)
    start_us: Mapped[int] = mapped_column(BigInteger)
    duration_us: Mapped[int] = mapped_column(BigInteger)
    cipher_sha256: Mapped[str] = mapped_column(String(64))
    cipher_size: Mapped[int] = mapped_column(BigInteger)
    plain_sha256: Mapped[str] = mapped_column(String(64))
    plain_size: Mapped[int] = mapped_column(BigInteger)
    chain: Mapped[str | None] = mapped_column(String(64))
    """The record's chain value: a recording session's live refresh reads on after the last one (verifier/live.py)."""


class SessionEvent(Base):
    """A session event as a station sent it (append-only): start, pause, resume, device_lost, health, end..."""

    __tablename__ = "session_events"
    __table_args__ = (UniqueConstraint("station_pk", "session_id", "seq", name="uq_session_events_seq"),
                      Index("ix_session_events_session", "session_id", "at_us"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_pk: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    session_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    """The station's queue number: events are numbered in the order they happened; resends are ignored."""
    site: Mapped[str] = mapped_column(String(64))
    room: Mapped[str] = mapped_column(String(64))
    at_us: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    received_us: Mapped[int] = mapped_column(BigInteger)


class CustodianKey(Base):
    """A custodian X25519 key pair; the private key is PKCS#8 PEM encrypted with the custodian passphrase.

    Keys are never deleted: after a rotation old sessions still name their key by key id.
    """

    __tablename__ = "custodian_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    public_pem: Mapped[str] = mapped_column(Text)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(100))
    current: Mapped[bool] = mapped_column(Boolean, default=False)
    """The key stations should wrap new sessions to (exactly one, the newest)."""


class Alert(Base):
    """A room that stopped working (web/alerts.py): opened when first seen failing, told once by e-mail and
    webhook when it has failed for `alert_after_s`, acknowledged by IT staff, cleared (and told "all clear")
    when it works again. At most one open alert per room (a partial unique index), whatever the number of
    nodes that evaluate."""

    __tablename__ = "alerts"
    __table_args__ = (Index("uq_alerts_open_room", "room_id", unique=True,
                            sqlite_where=text("cleared_us IS NULL"), postgresql_where=text("cleared_us IS NULL")),
                      Index("ix_alerts_opened", "opened_us"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    station_id: Mapped[str] = mapped_column(String(64), default="")
    opened_us: Mapped[int] = mapped_column(BigInteger)
    reasons: Mapped[str] = mapped_column(Text, default="[]")
    """The room's reasons when it was opened (JSON list of {"code", "params"}); kept as first seen."""
    notified_us: Mapped[int | None] = mapped_column(BigInteger)
    """When the "room down" notice went out (None: not yet, or the room came back before `alert_after_s`)."""
    acked_us: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str] = mapped_column(String(100), default="")
    cleared_us: Mapped[int | None] = mapped_column(BigInteger)
    clear_notified_us: Mapped[int | None] = mapped_column(BigInteger)
    """When the "all clear" went out (only for alerts whose "room down" went out)."""
    last_error: Mapped[str] = mapped_column(Text, default="")
    """Why the last delivery attempt failed (retried at the next evaluation)."""


class AlertDelivery(Base):
    """One notice of an alert taken by one channel (so each is told once, whatever fails elsewhere)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "kind", "channel", name="uq_alert_deliveries"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigId, ForeignKey("alerts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    """room_down or all_clear."""
    channel: Mapped[str] = mapped_column(String(16))
    """mail or webhook."""
    sent_us: Mapped[int] = mapped_column(BigInteger)


class SessionMarker(Base):
    """A marker a prosecutor added on the server while replaying or watching live: an annotation of the
    recording, attributed and audited, never part of the evidence (the investigator's are manifest events)."""

    __tablename__ = "session_markers"
    __table_args__ = (Index("ix_session_markers_session", "session_id", "at_us"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    at_us: Mapped[int] = mapped_column(BigInteger)
    """The moment marked, on the recording's wall clock."""
    label: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(100))
    author_name: Mapped[str] = mapped_column(String(200))
    unit_name: Mapped[str] = mapped_column(String(300))
    created_us: Mapped[int] = mapped_column(BigInteger)


class LiveView(Base):
    """One person watching a session live: open while their player keeps asking for the live playlist."""

    __tablename__ = "live_views"
    __table_args__ = (Index("ix_live_views_session", "session_id", "ended_us"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(200))
    unit_name: Mapped[str] = mapped_column(String(300))
    started_us: Mapped[int] = mapped_column(BigInteger)
    last_seen_us: Mapped[int] = mapped_column(BigInteger)
    ended_us: Mapped[int | None] = mapped_column(BigInteger)


# --- retention, legal hold, disposal (web/retention.py) -------------------------------------------------


class CaseStatus(StrEnum):
    INVESTIGATING = "investigating"
    PROSECUTED = "prosecuted"
    JUDGMENT = "judgment"
    FINAL = "final"
    CLOSED = "closed"


class Case(Base):
    """A case's outcome as a prosecutor recorded it (each change an audit entry): its status, since when, and
    its category (which retention policy applies)."""

    __tablename__ = "cases"
    case_number: Mapped[str] = mapped_column(String(200), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16))
    status_at_us: Mapped[int] = mapped_column(BigInteger)
    """The date the status holds from (the judgment's date, the day it became final...)."""
    final_at_us: Mapped[int | None] = mapped_column(BigInteger)
    """When the judgment became final, or the case was closed without one: what "after final" counts from."""
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at_us: Mapped[int] = mapped_column(BigInteger)


class RetentionAnchor(StrEnum):
    FINAL = "final"
    """From the day the judgment became final (or the case was closed)."""
    RECORDED = "recorded"
    """From the end of the recording: a fixed period."""


class RetentionPolicy(Base):
    """How long the sessions of a unit (and every unit below, unless it has its own) and case category are kept.
    `unit_id` None: every unit; `category` "": every category."""

    __tablename__ = "retention_policies"
    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    category: Mapped[str] = mapped_column(String(64), default="")
    anchor: Mapped[str] = mapped_column(String(16))
    years: Mapped[int] = mapped_column(Integer, default=0)
    days: Mapped[int] = mapped_column(Integer, default=0)
    mode: Mapped[str] = mapped_column(String(16))
    """The store's lock mode: GOVERNANCE or COMPLIANCE."""
    created_by: Mapped[str] = mapped_column(String(100))
    created_at_us: Mapped[int] = mapped_column(BigInteger)


class LegalHold(Base):
    """A legal hold on one session or on every session of a case; it ends only when lifted."""

    __tablename__ = "legal_holds"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    case_number: Mapped[str] = mapped_column(String(200), default="", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    placed_by: Mapped[str] = mapped_column(String(100))
    placed_at_us: Mapped[int] = mapped_column(BigInteger)
    lifted_by: Mapped[str] = mapped_column(String(100), default="")
    lifted_at_us: Mapped[int | None] = mapped_column(BigInteger)


class DisposalState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    """Two approvals: executed once the undo window has passed."""
    EXECUTED = "executed"
    STOPPED = "stopped"
    """A hold, a longer retention or a person stopped it before it was executed."""


class Disposal(Base):
    """The disposal of one session: proposed, approved by two different people, executed after the undo window."""

    __tablename__ = "disposals"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    retain_until_us: Mapped[int] = mapped_column(BigInteger)
    policy: Mapped[str] = mapped_column(Text)
    """The policy that ended the retention (canonical JSON), as when proposed."""
    proposed_by: Mapped[str] = mapped_column(String(100))
    proposed_at_us: Mapped[int] = mapped_column(BigInteger)
    first_approver: Mapped[str] = mapped_column(String(100), default="")
    first_approved_us: Mapped[int | None] = mapped_column(BigInteger)
    second_approver: Mapped[str] = mapped_column(String(100), default="")
    second_approved_us: Mapped[int | None] = mapped_column(BigInteger)
    execute_after_us: Mapped[int | None] = mapped_column(BigInteger)
    stopped_by: Mapped[str] = mapped_column(String(100), default="")
    stopped_at_us: Mapped[int | None] = mapped_column(BigInteger)
    stop_reason: Mapped[str] = mapped_column(Text, default="")
    executed_at_us: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str] = mapped_column(Text, default="")


class Tombstone(Base):
    """What a disposal destroyed, signed with the server's audit key (evidence/tombstone.py); append-only,
    kept for ever."""

    __tablename__ = "tombstones"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    disposal_id: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)
    """The signed tombstone (canonical JSON)."""
    at_us: Mapped[int] = mapped_column(BigInteger)


class ExportJobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    """Done, and its file removed after `export_keep_s` (the audit entries remain)."""


class ExportJob(Base):
    """A sealed copy being built in the background (web/export_jobs.py): who asked, its progress, its seal."""

    __tablename__ = "export_jobs"
    __table_args__ = (Index("ix_export_jobs_state", "state", "lease_us"),
                      Index("ix_export_jobs_requested_by", "requested_by", "id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(100))
    created_us: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=ExportJobState.QUEUED.value)
    step: Mapped[str] = mapped_column(String(16), default="")
    """checking (the documents) | copying (each object, its ciphertext checked) | sealing | ""."""
    worker: Mapped[str] = mapped_column(String(200), default="")
    """host:pid of the process building it."""
    lease_us: Mapped[int] = mapped_column(BigInteger, default=0)
    """The builder's claim runs until then (renewed with every progress); another process takes over after it."""
    objects_done: Mapped[int] = mapped_column(Integer, default=0)
    objects_total: Mapped[int] = mapped_column(Integer, default=0)
    bytes_written: Mapped[int] = mapped_column(BigInteger, default=0)
    started_us: Mapped[int | None] = mapped_column(BigInteger)
    finished_us: Mapped[int | None] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    """SHA-256 of the finished zip file: the seal of what was handed over."""
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    segments: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
