"""Heartbeat ingest with group commit (R08, R16).

A heartbeat is checked where it arrives: signature and freshness against the station's enrolled
key, then the body, then its verdict. What needs the database (the station's status, the nonce,
the append-only rows, the uptime span) waits for a batch: the heartbeats that arrive while a batch
is being written make the next one, written in one transaction with one commit. A request is
answered only after its batch committed, so durability is unchanged; the database does one commit
and three statements per batch instead of per heartbeat.

The statements of a batch (`batch_steps`) do no I/O of their own; two group commits run them:
`GroupCommit` for threads (the Flask app: the thread that finds no batch being written writes the
queue, then hands the next queue to the first thread waiting) and `AsyncGroupCommit` for coroutines
(`web/asgi.py`, on PostgreSQL). `HeartbeatRoute` answers POST /api/v1/heartbeat in front of Flask.

Refusals keep their meaning: an unknown station or a bad signature is 401, a revoked station 403
(read under the row lock in the batch's transaction, so revocation works at once), a nonce seen
before 409. A refused heartbeat stores nothing, not even its nonce; a batch the database refuses is
503 for every request in it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.errors import FormatError, IrmsError, SignatureError
from evidence.keys import ed25519_public_from_raw
from evidence.protocol import HEARTBEAT_PATH
from evidence.request_auth import SignedRequest, parse_request_headers, verify_request
from web.coverage import Policy, advance_span, judge_heartbeat
from web.db import Database
from web.errors import BadRequest, Conflict, DatabaseError, Forbidden, Unauthenticated
from web.models import StationStatus
from web.stations import HeartbeatBody, facts_of, parse_body

log = logging.getLogger("irms.web.ingest")

NONCE_PRUNE_EVERY_S = 10.0
"""How often (per process) nonces too old to matter are deleted, inside a batch's transaction."""


# --- one heartbeat ------------------------------------------------------------------------------------


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class Pending:
    """A heartbeat that passed every check not needing the database, waiting for its batch."""

    station_pk: int
    station_id: str
    nonce: str
    received_us: int
    at_us: int
    body: HeartbeatBody
    raw: str
    reasons: list[dict[str, object]]
    heartbeat_id: int | None = None
    error: IrmsError | None = None
    batch: list[Pending] | None = None
    """Set when this item's thread is to write a batch (the queue it took or was handed)."""
    wake: threading.Lock = field(default_factory=_held_lock)
    """Held until the item is answered or made leader (a bare lock wakes a thread cheaper than an Event)."""


@dataclass(frozen=True)
class Accepted:
    heartbeat_id: int
    ok: bool
    reasons: list[dict[str, object]]
    witnessed: bool


# --- the batch plan (pure) --------------------------------------------------------------------------


@dataclass
class StationRow:
    """The columns of a station a batch reads (under lock) and writes back."""

    pk: int
    status: str
    room_id: int | None
    last_seen_us: int | None
    last_heartbeat: int | tuple[str, int] | None
    """A stored heartbeat id, or ("new", i): the i-th heartbeat of this batch."""
    last_span: int | tuple[str, int] | None
    """A stored span id, or ("new", j): the j-th span this batch opens."""
    span_start_us: int | None
    span_end_us: int | None


@dataclass
class NewSpan:
    station_pk: int
    room_id: int
    start_us: int
    end_us: int
    closed: bool = False


@dataclass
class Plan:
    """Everything one batch writes, in order."""

    heartbeats: list[Pending] = field(default_factory=list)
    spans: list[NewSpan] = field(default_factory=list)
    span_updates: dict[int, tuple[int, bool]] = field(default_factory=dict)
    """Stored span id -> (end_us, closed), its final values after this batch."""
    stations: dict[int, StationRow] = field(default_factory=dict)


def _set_span(plan: Plan, row: StationRow, end_us: int, closed: bool) -> None:
    ref = row.last_span
    if isinstance(ref, tuple):
        span = plan.spans[ref[1]]
        span.end_us, span.closed = end_us, closed
    elif ref is not None:
        plan.span_updates[ref] = (end_us, closed)


def plan_batch(items: list[Pending], rows: Mapping[int, StationRow], policy: Policy) -> Plan:
    """Apply each accepted heartbeat, in arrival order, to its station's row and uptime span.

    `items` are those the batch accepted; `rows` their stations as read under lock (changed in place).
    The span rule is `coverage.advance_span`, as for one heartbeat at a time.
    """
    plan = Plan()
    for item in items:
        row = rows[item.station_pk]
        plan.stations[row.pk] = row
        ref = ("new", len(plan.heartbeats))
        plan.heartbeats.append(item)
        if row.last_seen_us is None or row.last_seen_us <= item.at_us:
            row.last_seen_us = item.at_us
            row.last_heartbeat = ref
        if row.room_id is None:
            continue
        open_span = None
        if row.last_span is not None and row.span_start_us is not None and row.span_end_us is not None:
            open_span = (row.span_start_us, row.span_end_us)
        upd = advance_span(open_span, item.at_us, not item.reasons, policy)
        if upd.action == "extend":
            _set_span(plan, row, upd.end_us, False)
            row.span_end_us = upd.end_us
        elif upd.action == "close":
            _set_span(plan, row, upd.end_us, True)
            row.span_start_us = row.span_end_us = None
        elif upd.action == "past":
            plan.spans.append(NewSpan(row.pk, row.room_id, upd.start_us, upd.end_us, closed=True))
        elif upd.action == "open":
            if open_span is not None and open_span[1] <= item.at_us:
                _set_span(plan, row, open_span[1], True)
            row.last_span = ("new", len(plan.spans))
            plan.spans.append(NewSpan(row.pk, row.room_id, upd.start_us, upd.end_us))
            row.span_start_us, row.span_end_us = upd.start_us, upd.end_us
    return plan


def _resolve(ref: int | tuple[str, int] | None, new_ids: list[int]) -> int | None:
    return new_ids[ref[1]] if isinstance(ref, tuple) else ref


# --- the database side of a batch ------------------------------------------------------------------
# PostgreSQL gets a batch in two statements (and the commit): rows travel as one JSON text per table,
# which both sides turn into rows in C (json_to_recordset), not as one array parameter per column.

_STATION_COLUMNS = "id, status, room_id, last_seen_us, last_heartbeat_id, last_span_id, span_start_us, span_end_us"
_PG_READ = f"""WITH
st AS (SELECT {_STATION_COLUMNS} FROM stations WHERE id = ANY(%(ids)s::int[]) ORDER BY id FOR UPDATE),
n AS (INSERT INTO nonces (station_pk, nonce, seen_us)
      SELECT x.pk, x.nonce, x.seen FROM json_to_recordset(%(nonces)s::json) AS x(pk int, nonce text, seen bigint)
      JOIN st ON st.id = x.pk AND st.status = %(enrolled)s
      ON CONFLICT (station_pk, nonce) DO NOTHING RETURNING station_pk, nonce)
SELECT st.*, array(SELECT n.nonce FROM n WHERE n.station_pk = st.id) FROM st"""
_PG_WRITE = """WITH
hb AS (SELECT nextval(%(hb_seq)s::regclass) AS id, x.*
       FROM ROWS FROM (json_to_recordset(%(hb)s::json) AS (pk int, received bigint, sent bigint, ok bool,
            reasons text, disk bigint, clock bigint, body text)) WITH ORDINALITY AS x),
hbi AS (INSERT INTO heartbeats (id, station_pk, received_us, sent_us, ok, reasons, disk_free_bytes,
                                clock_offset_ms, body)
        SELECT id, pk, received, sent, ok, reasons, disk, clock, body FROM hb),
wh AS (INSERT INTO witnessed_heads (station_pk, session_id, idx, chain_head, received_us)
       SELECT pk, session, idx, head, received FROM json_to_recordset(%(wh)s::json)
       AS x(pk int, session text, idx bigint, head text, received bigint)),
sp AS (SELECT nextval(%(sp_seq)s::regclass) AS id, x.*
       FROM ROWS FROM (json_to_recordset(%(sp)s::json) AS (pk int, room int, start_us bigint, end_us bigint,
            closed bool)) WITH ORDINALITY AS x),
spi AS (INSERT INTO uptime_spans (id, station_pk, room_id, start_us, end_us, closed)
        SELECT id, pk, room, start_us, end_us, closed FROM sp),
sx AS (UPDATE uptime_spans u SET end_us = x.end_us, closed = x.closed
       FROM json_to_recordset(%(sx)s::json) AS x(id bigint, end_us bigint, closed bool)
       WHERE u.id = x.id AND u.id = ANY(%(sx_ids)s::bigint[])),
stu AS (UPDATE stations s SET last_seen_us = x.seen,
               last_heartbeat_id = coalesce((SELECT id FROM hb WHERE hb.ordinality = x.hb_new), x.hb),
               last_span_id = coalesce((SELECT id FROM sp WHERE sp.ordinality = x.span_new), x.span),
               span_start_us = x.span_start, span_end_us = x.span_end
        FROM json_to_recordset(%(st)s::json) AS x(id int, seen bigint, hb bigint, hb_new bigint, span bigint,
             span_new bigint, span_start bigint, span_end bigint)
        WHERE s.id = x.id AND s.id = ANY(%(st_ids)s::int[]))
SELECT id FROM hb ORDER BY ordinality"""

_SQLITE_STATIONS = f"SELECT {_STATION_COLUMNS} FROM stations WHERE id IN ({{}})"
_SQLITE_NONCE = ("INSERT INTO nonces (station_pk, nonce, seen_us) VALUES (?, ?, ?) "
                 "ON CONFLICT (station_pk, nonce) DO NOTHING RETURNING id")


def _heartbeat_row(item: Pending) -> tuple[Any, ...]:
    b = item.body
    return (item.station_pk, item.received_us, b.sent_at_us, not item.reasons,
            json.dumps(item.reasons, ensure_ascii=False), b.disk_free_bytes, b.clock_offset_ms, item.raw)


def _station_values(row: StationRow, hb_ids: list[int], sp_ids: list[int]) -> tuple[Any, ...]:
    return (row.last_seen_us, _resolve(row.last_heartbeat, hb_ids), _resolve(row.last_span, sp_ids),
            row.span_start_us, row.span_end_us)


def _ordinal(ref: int | tuple[str, int] | None) -> tuple[int | None, int | None]:
    """A reference as (stored id, None) or (None, 1-based position in this batch's new rows)."""
    return (None, ref[1] + 1) if isinstance(ref, tuple) else (ref, None)


def _json_rows(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    return json.dumps([dict(zip(names, r, strict=True)) for r in rows], ensure_ascii=False, separators=(",", ":"))


Steps = Generator[tuple[str, Any], list[tuple[Any, ...]], Any]
"""A batch's statements without I/O: yields (sql, parameters), is sent back the rows the statement
returned (empty if none). The same steps run on a blocking cursor (`run_steps`) or an asyncio one
(`run_steps_async`)."""


class _Backend:
    """The statements of a batch for one dialect."""

    param = "%s"

    def read(self, items: list[Pending]) -> Steps:
        """Lock and read the batch's stations; store the nonces of those enrolled. Returns the station rows
        and the (station pk, nonce) pairs that were new (the first of duplicates within `items` only)."""
        raise NotImplementedError

    def write(self, plan: Plan) -> Steps:
        """Write the plan; sets each heartbeat's id."""
        raise NotImplementedError


class _Postgres(_Backend):
    SEQUENCES = "SELECT pg_get_serial_sequence('heartbeats', 'id'), pg_get_serial_sequence('uptime_spans', 'id')"

    def __init__(self) -> None:
        self.sequences: tuple[str, str] | None = None

    def read(self, items: list[Pending]) -> Steps:
        nonces = _json_rows(("pk", "nonce", "seen"),
                            [(i.station_pk, i.nonce, i.received_us) for i in _first_of_each_nonce(items)])
        rows = yield (_PG_READ, {"ids": sorted({i.station_pk for i in items}), "nonces": nonces,
                                 "enrolled": StationStatus.ENROLLED.value})
        return [r[:-1] for r in rows], {(int(r[0]), str(n)) for r in rows for n in r[-1]}

    def write(self, plan: Plan) -> Steps:
        heads = [(i.station_pk, i.body.recording.session_id, i.body.recording.index, i.body.recording.chain_head,
                  i.received_us) for i in plan.heartbeats if i.body.recording is not None]
        stations = [(r.pk, r.last_seen_us, *_ordinal(r.last_heartbeat), *_ordinal(r.last_span),
                     r.span_start_us, r.span_end_us) for r in plan.stations.values()]
        if self.sequences is None:
            found = yield (self.SEQUENCES, ())
            self.sequences = (str(found[0][0]), str(found[0][1]))
        ids = yield (_PG_WRITE, {
            "hb_seq": self.sequences[0], "sp_seq": self.sequences[1],
            "sx_ids": list(plan.span_updates), "st_ids": list(plan.stations),
            "hb": _json_rows(("pk", "received", "sent", "ok", "reasons", "disk", "clock", "body"),
                             [_heartbeat_row(i) for i in plan.heartbeats]),
            "wh": _json_rows(("pk", "session", "idx", "head", "received"), heads),
            "sp": _json_rows(("pk", "room", "start_us", "end_us", "closed"),
                             [(s.station_pk, s.room_id, s.start_us, s.end_us, s.closed) for s in plan.spans]),
            "sx": _json_rows(("id", "end_us", "closed"), [(k, *v) for k, v in plan.span_updates.items()]),
            "st": _json_rows(("id", "seen", "hb", "hb_new", "span", "span_new", "span_start", "span_end"),
                             stations)})
        for item, (hb_id,) in zip(plan.heartbeats, ids, strict=True):
            item.heartbeat_id = int(hb_id)


class _Sqlite(_Backend):
    """Statements row by row, ids as SQLite assigns them (one writer at a time: BEGIN IMMEDIATE)."""

    param = "?"

    def read(self, items: list[Pending]) -> Steps:
        pks = sorted({i.station_pk for i in items})
        rows = yield (_SQLITE_STATIONS.format(",".join("?" * len(pks))), pks)
        enrolled = {int(r[0]) for r in rows if r[1] == StationStatus.ENROLLED.value}
        fresh: set[tuple[int, str]] = set()
        for i in _first_of_each_nonce(items):
            if i.station_pk in enrolled and (yield (_SQLITE_NONCE, (i.station_pk, i.nonce, i.received_us))):
                fresh.add((i.station_pk, i.nonce))
        return rows, fresh

    def write(self, plan: Plan) -> Steps:
        hb_ids: list[int] = []
        for item in plan.heartbeats:
            got = yield ("INSERT INTO heartbeats (station_pk, received_us, sent_us, ok, reasons, disk_free_bytes, "
                         "clock_offset_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", _heartbeat_row(item))
            item.heartbeat_id = int(got[0][0])
            hb_ids.append(item.heartbeat_id)
            rec = item.body.recording
            if rec is not None:
                yield ("INSERT INTO witnessed_heads (station_pk, session_id, idx, chain_head, received_us) "
                       "VALUES (?, ?, ?, ?, ?)", (item.station_pk, rec.session_id, rec.index, rec.chain_head,
                                                  item.received_us))
        sp_ids: list[int] = []
        for sp in plan.spans:
            got = yield ("INSERT INTO uptime_spans (station_pk, room_id, start_us, end_us, closed) "
                         "VALUES (?, ?, ?, ?, ?) RETURNING id", (sp.station_pk, sp.room_id, sp.start_us, sp.end_us,
                                                                  sp.closed))
            sp_ids.append(int(got[0][0]))
        for span_id, (end, closed) in plan.span_updates.items():
            yield "UPDATE uptime_spans SET end_us = ?, closed = ? WHERE id = ?", (end, closed, span_id)
        for r in plan.stations.values():
            yield ("UPDATE stations SET last_seen_us = ?, last_heartbeat_id = ?, last_span_id = ?, "
                   "span_start_us = ?, span_end_us = ? WHERE id = ?", (*_station_values(r, hb_ids, sp_ids), r.pk))


def _first_of_each_nonce(items: list[Pending]) -> list[Pending]:
    seen: set[tuple[int, str]] = set()
    out = []
    for item in items:
        key = (item.station_pk, item.nonce)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def batch_steps(backend: _Backend, batch: list[Pending], policy: Policy, prune_before_us: int | None) -> Steps:
    """One batch: lock and read its stations and nonces, refuse what must be refused, write the rest, and
    (when due) delete nonces too old to matter."""
    station_rows, fresh = yield from backend.read(batch)
    found = {int(r[0]): r for r in station_rows}
    rows: dict[int, StationRow] = {}
    accepted: list[Pending] = []
    for item in batch:
        r = found.get(item.station_pk)
        key = (item.station_pk, item.nonce)
        if r is None:
            item.error = Unauthenticated(f"unknown station {item.station_id}")
        elif r[1] == StationStatus.REVOKED.value:
            item.error = Forbidden(f"station {item.station_id} is revoked")
        elif key not in fresh:
            item.error = Conflict("request nonce was already used (replay)")
        else:
            fresh.discard(key)
            rows.setdefault(item.station_pk, StationRow(*r))
            accepted.append(item)
    if accepted:
        yield from backend.write(plan_batch(accepted, rows, policy))
    if prune_before_us is not None:
        yield f"DELETE FROM nonces WHERE seen_us < {backend.param}", (prune_before_us,)


def run_steps(cur: Any, steps: Steps) -> None:
    """Run a batch's steps on a blocking DB-API cursor."""
    try:
        stmt = next(steps)
        while True:
            cur.execute(*stmt)
            stmt = steps.send(list(cur.fetchall()) if cur.description is not None else [])
    except StopIteration:
        pass


async def run_steps_async(cur: Any, steps: Steps) -> None:
    """Run a batch's steps on a psycopg AsyncCursor."""
    try:
        stmt = next(steps)
        while True:
            await cur.execute(*stmt)
            stmt = steps.send(list(await cur.fetchall()) if cur.description is not None else [])
    except StopIteration:
        pass


def _fail(batch: list[Pending], err: IrmsError) -> None:
    for item in batch:
        if item.error is None:
            item.heartbeat_id = None
            item.error = err


def _db_failure(batch: list[Pending], err: BaseException) -> None:
    log.error("heartbeat batch of %d not stored: %s: %s", len(batch), type(err).__name__,
              str(err).splitlines()[0] if str(err) else "")
    _fail(batch, DatabaseError(f"the database failed; the heartbeat was not stored ({type(err).__name__})"))


# --- group commit -----------------------------------------------------------------------------------


@dataclass
class BatchStats:
    batches: int = 0
    heartbeats: int = 0
    largest: int = 0

    def add(self, batch: list[Pending]) -> None:
        self.batches += 1
        self.heartbeats += len(batch)
        self.largest = max(self.largest, len(batch))


class _Pruning:
    """When a batch should also delete old nonces (at most every NONCE_PRUNE_EVERY_S per process)."""

    def __init__(self, window_s: int, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self.clock = clock
        self.last = clock()

    def due(self, batch: list[Pending]) -> int | None:
        if self.clock() - self.last < NONCE_PRUNE_EVERY_S:
            return None
        self.last = self.clock()
        return batch[0].received_us - 2 * self.window_s * 1_000_000


class GroupCommit:
    """Leader/follower group commit of heartbeats: one transaction per batch of concurrent requests
    (threads), one batch written at a time. (Two writers at once were measured slower: smaller batches.)"""

    def __init__(self, db: Database, policy: Policy, window_s: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.policy = policy
        self.stats = BatchStats()
        self._backend: _Backend = _Postgres() if db.dialect == "postgresql" else _Sqlite()
        self._lock = threading.Lock()
        self._queue: list[Pending] = []
        self._writing = False
        self._pruning = _Pruning(window_s, clock)

    def submit(self, item: Pending) -> None:
        """Queue `item` and return once its batch committed (item.heartbeat_id) or refused it (item.error)."""
        with self._lock:
            self._queue.append(item)
            if not self._writing:
                self._writing = True
                item.batch, self._queue = self._queue, []
        if item.batch is None:
            item.wake.acquire()
            if item.batch is None:  # answered by the writer of its batch
                return
        # This thread writes `item.batch` (its own heartbeat is in it), then hands the queue on.
        batch = item.batch
        try:
            self._write(batch)
        except BaseException:
            _fail(batch, DatabaseError("the server failed while storing the heartbeat"))
            raise
        finally:
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.batch, self._queue = self._queue, []
                    nxt.wake.release()
                else:
                    self._writing = False
            for other in batch:
                if other is not item:
                    other.wake.release()

    def _write(self, batch: list[Pending]) -> None:
        raw = None
        try:
            raw = self.db.engine.raw_connection()
            conn = raw.driver_connection
            if isinstance(self._backend, _Sqlite):
                if conn.in_transaction:
                    conn.rollback()
                conn.execute("BEGIN IMMEDIATE")
            cur = conn.cursor()
            try:
                run_steps(cur, batch_steps(self._backend, batch, self.policy, self._pruning.due(batch)))
            finally:
                cur.close()
            conn.commit()
        except self._driver_errors() as err:
            if raw is not None:
                try:
                    raw.rollback()
                except self._driver_errors():
                    raw.invalidate()
            _db_failure(batch, err)
            return
        finally:
            if raw is not None:
                raw.close()
        self.stats.add(batch)

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        return (self.db.engine.dialect.loaded_dbapi.Error,)


class AsyncGroupCommit:
    """The same group commit on one asyncio event loop (PostgreSQL, psycopg's AsyncConnection).

    Requests are coroutines, so a batch is whatever arrived while the previous one was being written,
    without a thread per waiting request. One connection per process, opened on first use and again
    after a failure.
    """

    def __init__(self, conninfo: str, policy: Policy, window_s: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conninfo = conninfo
        self.policy = policy
        self.stats = BatchStats()
        self._backend = _Postgres()
        self._queue: list[tuple[Pending, asyncio.Future[None]]] = []
        self._writing = False
        self._conn: Any = None
        self._pruning = _Pruning(window_s, clock)

    async def submit(self, item: Pending) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                queued, self._queue = self._queue, []
                batch = [item for item, _ in queued]
                try:
                    await self._write(batch)
                except BaseException as err:  # noqa: BLE001 - every waiting request gets an answer
                    _db_failure(batch, err)
                for _, done in queued:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._writing = False

    async def _write(self, batch: list[Pending]) -> None:
        import psycopg
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self.conninfo)
            async with self._conn.cursor() as cur:
                await run_steps_async(cur, batch_steps(self._backend, batch, self.policy, self._pruning.due(batch)))
            await self._conn.commit()
        except psycopg.Error as err:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()
            _db_failure(batch, err)
            return
        self.stats.add(batch)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


# --- the request side ---------------------------------------------------------------------------------


class HeartbeatIngest:
    """Checks a signed heartbeat request and hands it to the group commit; one per app (process)."""

    def __init__(self, db: Database, policy: Policy, window_s: int) -> None:
        self.db = db
        self.policy = policy
        self.window_s = window_s
        self.commit = GroupCommit(db, policy, window_s)
        self.keys: dict[str, tuple[int, Ed25519PublicKey]] = {}
        """Station id -> (row id, enrolled key). Both never change for a station id, so they are kept;
        its status (revoked or not) is read by each batch."""

    def station_key(self, station_id: str) -> tuple[int, Ed25519PublicKey] | None:
        known = self.keys.get(station_id)
        if known is not None:
            return known
        param = "%s" if self.db.dialect == "postgresql" else "?"
        raw = self.db.engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()
            cur.execute(f"{STATION_KEY_SQL} = {param}", (station_id,))
            row = cur.fetchone()
            cur.close()
            raw.driver_connection.rollback()
        except self.commit._driver_errors() as err:
            raise DatabaseError(f"the database failed ({type(err).__name__})") from None
        finally:
            raw.close()
        return self.remember(station_id, row)

    def remember(self, station_id: str, row: tuple[Any, ...] | None) -> tuple[int, Ed25519PublicKey] | None:
        if row is None:
            return None
        try:
            key = ed25519_public_from_raw(base64.b64decode(row[1]), "station key")
        except (binascii.Error, FormatError):
            return None
        found = (int(row[0]), key)
        self.keys[station_id] = found
        return found

    def prepare(self, req: SignedRequest, found: tuple[int, Ed25519PublicKey] | None, headers: Mapping[str, str],
                path: str, raw: bytes, now_us: int) -> Pending:
        """Every check that needs no database: the refusal is raised (401, 400)."""
        if found is None:
            raise Unauthenticated(f"unknown station {req.station_id}")
        pk, key = found
        try:
            verify_request(key, headers, "POST", path, raw, now_us // 1_000_000, self.window_s)
        except (SignatureError, FormatError) as err:
            raise Unauthenticated(str(err)) from None
        body: HeartbeatBody = parse_body(HeartbeatBody, raw, "heartbeat")
        if body.station_id != req.station_id:
            raise BadRequest(f"heartbeat names station {body.station_id}, but was signed by {req.station_id}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("heartbeat: body is not UTF-8") from None
        facts = facts_of(body, now_us)
        reasons = [r.as_json() for r in judge_heartbeat(facts, self.policy)]
        return Pending(pk, req.station_id, req.nonce, now_us, facts.at_us, body, text, reasons)

    def ingest(self, headers: Mapping[str, str], path: str, raw: bytes, now_us: int) -> Accepted:
        """Authenticate, check and store one heartbeat; raises the refusal (401/403/409/400/503)."""
        req = signed_request(headers)
        item = self.prepare(req, self.station_key(req.station_id), headers, path, raw, now_us)
        self.commit.submit(item)
        return outcome(item)


STATION_KEY_SQL = "SELECT id, public_key FROM stations WHERE station_id"


def signed_request(headers: Mapping[str, str]) -> SignedRequest:
    try:
        return parse_request_headers(headers)
    except FormatError as err:
        raise Unauthenticated(str(err)) from None


def outcome(item: Pending) -> Accepted:
    if item.error is not None:
        raise item.error
    assert item.heartbeat_id is not None
    return Accepted(item.heartbeat_id, not item.reasons, item.reasons, item.body.recording is not None)


class AsyncHeartbeatIngest:
    """The heartbeat path on an asyncio server: the same checks, `AsyncGroupCommit` to store."""

    def __init__(self, ingest: HeartbeatIngest, conninfo: str) -> None:
        self.sync = ingest
        self.conninfo = conninfo
        self.commit = AsyncGroupCommit(conninfo, ingest.policy, ingest.window_s)
        self._lookups: Any = None
        """A connection (autocommit) for the key of a station not seen before by this process."""

    async def station_key(self, station_id: str) -> tuple[int, Ed25519PublicKey] | None:
        known = self.sync.keys.get(station_id)
        if known is not None:
            return known
        import psycopg
        try:
            if self._lookups is None or self._lookups.closed:
                self._lookups = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            cur = await self._lookups.execute(f"{STATION_KEY_SQL} = %s", (station_id,))
            row = await cur.fetchone()
        except psycopg.Error as err:
            conn, self._lookups = self._lookups, None
            if conn is not None:
                await conn.close()
            raise DatabaseError(f"the database failed ({type(err).__name__})") from None
        return self.sync.remember(station_id, row)

    async def close(self) -> None:
        await self.commit.close()
        if self._lookups is not None:
            await self._lookups.close()
            self._lookups = None

    async def ingest(self, headers: Mapping[str, str], path: str, raw: bytes, now_us: int) -> Accepted:
        req = signed_request(headers)
        item = self.sync.prepare(req, await self.station_key(req.station_id), headers, path, raw, now_us)
        await self.commit.submit(item)
        return outcome(item)


# --- the route, in front of Flask ---------------------------------------------------------------------

SECURITY_HEADERS = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                    ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store")]
_REASONS = {201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
            405: "405 Method Not Allowed", 409: "409 Conflict", 413: "413 Content Too Large",
            500: "500 Internal Server Error", 503: "503 Service Unavailable"}


class HeartbeatRoute:
    """WSGI middleware answering POST /api/v1/heartbeat itself; everything else goes to Flask.

    The heartbeat is the one request that arrives thousands of times a second, from stations, with no
    cookie, form or page: Flask's request machinery (context, session, hooks) cost as much CPU as the
    whole check and store. Answers are the API's: 201 with the verdict, or the refusal as
    {"error", "status", "message"}.
    """

    def __init__(self, app: Callable[..., Any], ingest: HeartbeatIngest, clock: Callable[[], int],
                 interval_s: int, max_body: int) -> None:
        self.app = app
        self.ingest = ingest
        self.clock = clock
        self.interval_s = interval_s
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != HEARTBEAT_PATH:
            return self.app(environ, start_response)
        status, answer = self._answer(environ)
        body = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        start_response(_REASONS.get(status, f"{status} Error"), answer_headers(status, len(body)))
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, dict[str, object]]:
        if environ.get("REQUEST_METHOD") != "POST":
            return refusal(405, "MethodNotAllowed", "heartbeats are sent with POST")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return refusal(400, "BadRequest", "Content-Length is not a number")
        if length > self.max_body:
            return refusal(413, "TooLarge", f"a heartbeat is at most {self.max_body} bytes")
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        now = self.clock()
        try:
            got = self.ingest.ingest(_Headers(environ), environ.get("SCRIPT_NAME", "") + HEARTBEAT_PATH, raw, now)
        except IrmsError as err:
            return refusal(err.http_status, type(err).__name__, str(err))
        return 201, accepted_answer(got, self.interval_s, now)


def refusal(status: int, error: str, message: str) -> tuple[int, dict[str, object]]:
    """A refused heartbeat's status and answer, as every API refusal: {"error", "status", "message"}."""
    return status, {"error": error, "status": status, "message": message}


def accepted_answer(got: Accepted, interval_s: int, now_us: int) -> dict[str, object]:
    return {"accepted": True, "heartbeat_id": got.heartbeat_id, "ok": got.ok, "reasons": got.reasons,
            "witnessed": got.witnessed, "heartbeat_interval_s": interval_s, "server_time_us": now_us}


def answer_headers(status: int, length: int) -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(length)), *SECURITY_HEADERS]
    if status == 405:
        headers.append(("Allow", "POST"))
    return headers


class _Headers(Mapping[str, str]):
    """Request headers by their HTTP name, read from the WSGI environ (X-IRMS-Nonce: HTTP_X_IRMS_NONCE)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    def __getitem__(self, name: str) -> str:
        value = self.environ["HTTP_" + name.upper().replace("-", "_")]
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return (k[5:].replace("_", "-").title() for k in self.environ if k.startswith("HTTP_"))

    def __len__(self) -> int:
        return sum(1 for k in self.environ if k.startswith("HTTP_"))
