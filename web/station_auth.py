"""Station authentication: who sent a signed station request, and may it be taken (R16).

One place for every station request (heartbeats, session events): the enrolled key (looked up
once per process and kept: a station id's key never changes), the signature and its freshness
(`evidence.request_auth`), the nonce (stored with the request it came with, so a replay is
refused) and the refusal rule: 401 unknown station or bad signature or stale, 403 revoked,
409 nonce seen before.

The heartbeat path reads the station's status and stores the nonce inside its batch's own
statements (web/heartbeat/sql.py) and applies `refusal` to what they return; the events path
calls `authenticate` on its request's database session.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from evidence.errors import FormatError, IrmsError, SignatureError
from evidence.keys import ed25519_public_from_raw
from evidence.request_auth import RequestHeaders, SignedRequest, parse_request_headers, verify_request
from web.db import Database
from web.errors import Conflict, DatabaseError, Forbidden, Unauthenticated
from web.models import StationStatus

KEY_SQL = "SELECT id, public_key, enrolled_at_us FROM stations WHERE station_id = :sid"
NONCE_SQL = ("INSERT INTO nonces (station_pk, nonce, seen_us) VALUES (:pk, :nonce, :now) "
             "ON CONFLICT (station_pk, nonce) DO NOTHING RETURNING id")
"""Store a nonce; returns a row only if it was new for the station."""
FORGET_NONCE_SQL = "DELETE FROM nonces WHERE station_pk = :pk AND nonce = :nonce"
"""Undo NONCE_SQL for a request refused after its nonce was stored (it keeps nothing)."""
PRUNE_NONCES_SQL = "DELETE FROM nonces WHERE seen_us < :before"

_PG_PARAMS: dict[str, str] = {}


def pg_params(sql: str) -> str:
    """A statement written with :name parameters in psycopg's %(name)s style."""
    return _PG_PARAMS.get(sql) or _PG_PARAMS.setdefault(sql, re.sub(r":(\w+)", r"%(\1)s", sql))


# --- keys and signatures ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def public_key(b64_key: str) -> Ed25519PublicKey:
    """A station's enrolled key (raw Ed25519, base64, as the stations table keeps it)."""
    return ed25519_public_from_raw(base64.b64decode(b64_key), "station key")


def signed_request(headers: RequestHeaders) -> SignedRequest:
    """Who claims to have signed the request (not yet checked); 401 without the signature headers."""
    try:
        return parse_request_headers(headers)
    except FormatError as err:
        raise Unauthenticated(str(err)) from None


def check_signature(key: Ed25519PublicKey, headers: RequestHeaders, method: str, path: str, body: bytes,
                    now_us: int, window_s: int) -> None:
    """The signature verifies and the timestamp is within the window, or 401."""
    try:
        verify_request(key, headers, method, path, body, now_us // 1_000_000, window_s)
    except (SignatureError, FormatError) as err:
        raise Unauthenticated(str(err)) from None


def refusal(station_id: str, status: str | None, nonce_fresh: bool) -> IrmsError | None:
    """The refusal of a correctly signed request given its station's status (None: unknown) and whether
    its nonce was new; None if it may be taken."""
    if status is None:
        return Unauthenticated(f"unknown station {station_id}")
    if status == StationStatus.REVOKED.value:
        return Forbidden(f"station {station_id} is revoked")
    if not nonce_fresh:
        return Conflict("request nonce was already used (replay)")
    return None


class StationKey(NamedTuple):
    pk: int
    key: Ed25519PublicKey
    enrolled_at_us: int
    """When the station was enrolled (the daily self-test's grace period runs from it)."""


class StationKeys:
    """Station id -> (row id, enrolled key, enrolment time), read once per process: none of them changes
    for a station id (its status, revoked or not, is read with each request)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.known: dict[str, StationKey] = {}
        self._lookups: Any = None
        """A psycopg AsyncConnection (autocommit) for `find_async`."""

    def find(self, station_id: str) -> StationKey | None:
        known = self.known.get(station_id)
        if known is not None:
            return known
        sql = pg_params(KEY_SQL) if self.db.dialect == "postgresql" else KEY_SQL
        raw = self.db.engine.raw_connection()
        try:
            conn = raw.driver_connection
            assert conn is not None  # None only once a pooled connection is closed or detached
            cur = conn.cursor()
            cur.execute(sql, {"sid": station_id})
            row = cur.fetchone()
            cur.close()
            conn.rollback()
        except self.db.engine.dialect.loaded_dbapi.Error as err:
            raise DatabaseError(f"the database failed ({type(err).__name__})") from None
        finally:
            raw.close()
        return self.remember(station_id, row)

    async def find_async(self, station_id: str, conninfo: str) -> StationKey | None:
        """`find` on an asyncio event loop (PostgreSQL), on a connection of its own."""
        known = self.known.get(station_id)
        if known is not None:
            return known
        import psycopg
        try:
            if self._lookups is None or self._lookups.closed:
                self._lookups = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            cur = await self._lookups.execute(pg_params(KEY_SQL), {"sid": station_id})
            row = await cur.fetchone()
        except psycopg.Error as err:
            conn, self._lookups = self._lookups, None
            if conn is not None:
                await conn.close()
            raise DatabaseError(f"the database failed ({type(err).__name__})") from None
        return self.remember(station_id, row)

    async def close_async(self) -> None:
        if self._lookups is not None:
            await self._lookups.close()
            self._lookups = None

    def remember(self, station_id: str, row: tuple[Any, ...] | None) -> StationKey | None:
        if row is None:
            return None
        try:
            key = public_key(str(row[1]))
        except (binascii.Error, FormatError):
            return None
        found = StationKey(int(row[0]), key, int(row[2]))
        self.known[station_id] = found
        return found


# --- a request on a database session (events) ----------------------------------------------------------


@dataclass(frozen=True)
class StationRef:
    """The columns of the station behind a request, read in one query."""

    pk: int
    station_id: str
    public_key: str
    status: str
    room_id: int | None


_STATION_SQL = "SELECT id, station_id, public_key, status, room_id FROM stations WHERE station_id = :sid"
_STATION_NONCE_PG = (f"WITH st AS ({_STATION_SQL} FOR UPDATE), "
                     "n AS (INSERT INTO nonces (station_pk, nonce, seen_us) SELECT id, :nonce, :now FROM st "
                     "ON CONFLICT (station_pk, nonce) DO NOTHING RETURNING id) "
                     "SELECT st.*, EXISTS (SELECT 1 FROM n) FROM st")


def authenticate(s: Session, headers: RequestHeaders, method: str, path: str, body: bytes, now_us: int,
                 window_s: int) -> StationRef:
    """The station behind a signed request, or the refusal with its status (401, 403, 409).

    One round trip on PostgreSQL: the station row (locked until commit) and the nonce, inserted at once.
    A refused request is rolled back, so a nonce is only kept with the request it came with.
    """
    req = signed_request(headers)
    found = _station_and_nonce(s, req.station_id, req.nonce, now_us)
    if found is None:
        raise Unauthenticated(f"unknown station {req.station_id}")
    station, nonce_fresh = found
    try:
        key = public_key(station.public_key)
    except (binascii.Error, FormatError):
        raise Unauthenticated(f"station {station.station_id} has no usable key") from None
    check_signature(key, headers, method, path, body, now_us, window_s)
    refused = refusal(station.station_id, station.status, nonce_fresh)
    if refused is not None:
        raise refused
    return station


def _execute(s: Session, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run one statement on the session's connection (its transaction); the first row, if any."""
    dbapi = s.connection().connection
    if s.get_bind().dialect.name == "postgresql":
        sql = pg_params(sql)
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
    fresh = _execute(s, NONCE_SQL, {"pk": station.pk, "nonce": nonce, "now": now_us}) is not None
    return station, fresh
