"""The statements of a heartbeat batch, per dialect, as steps without I/O.

PostgreSQL gets a batch in two statements (and the commit): the read locks the stations, stores the
nonces and reads (or claims) the owners of the sessions named; the write stores everything else.
Rows travel as one JSON text per table, which both sides turn into rows in C (json_to_recordset),
not as one array parameter per column. SQLite gets the same, row by row (one writer at a time:
BEGIN IMMEDIATE).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from web.audit import LAST_SQL
from web.heartbeat.pending import Pending
from web.heartbeat.plan import Plan, StationRow, resolve
from web.models import StationStatus
from web.ownership import CLAIM_SQL, OWNER_SQL
from web.station_auth import NONCE_SQL, pg_params

_STATION_COLUMNS = ("id, status, room_id, last_seen_us, last_heartbeat_id, last_span_id, span_start_us, span_end_us, "
                    "last_fail_us")
_PG_READ = f"""WITH
st AS (SELECT {_STATION_COLUMNS} FROM stations WHERE id = ANY(%(ids)s::int[]) ORDER BY id FOR UPDATE),
n AS (INSERT INTO nonces (station_pk, nonce, seen_us)
      SELECT x.pk, x.nonce, x.seen FROM json_to_recordset(%(nonces)s::json) AS x(pk int, nonce text, seen bigint)
      JOIN st ON st.id = x.pk AND st.status = %(enrolled)s
      ON CONFLICT (station_pk, nonce) DO NOTHING RETURNING station_pk, nonce),
c AS (SELECT x.* FROM ROWS FROM (json_to_recordset(%(claims)s::json) AS (session text, pk int, nonce text))
      WITH ORDINALITY AS x),
hd AS (SELECT s.session_id, o.id, o.station_id FROM sessions s JOIN stations o ON o.station_id = s.station_id
       WHERE s.header_known AND s.session_id IN (SELECT session FROM c)),
ow AS (SELECT so.session_id, o.id, o.station_id FROM session_owners so JOIN stations o ON o.id = so.station_pk
       WHERE so.session_id IN (SELECT session FROM c) AND so.session_id NOT IN (SELECT session_id FROM hd)),
nc AS (INSERT INTO session_owners (session_id, station_pk, claimed_us)
       SELECT DISTINCT ON (c.session) c.session, c.pk, %(now)s::bigint FROM c
       JOIN n ON n.station_pk = c.pk AND n.nonce = c.nonce
       WHERE c.session NOT IN (SELECT session_id FROM hd) AND c.session NOT IN (SELECT session_id FROM ow)
       ORDER BY c.session, c.ordinality
       ON CONFLICT (session_id) DO UPDATE SET station_pk = session_owners.station_pk
       RETURNING session_id, station_pk),
own AS (SELECT session_id, id, station_id FROM hd UNION ALL SELECT session_id, id, station_id FROM ow
        UNION ALL SELECT nc.session_id, o.id, o.station_id FROM nc JOIN stations o ON o.id = nc.station_pk)
SELECT st.*, array(SELECT n.nonce FROM n WHERE n.station_pk = st.id),
       (SELECT json_agg(json_build_array(session_id, id, station_id)) FROM own),
       (SELECT json_build_array(seq, hash) FROM audit_log ORDER BY seq DESC LIMIT 1) FROM st"""
# Ownership (web/ownership.py) is decided in the same statement: a session's owner is its header's station,
# else its claimant (session_owners), else the first fresh heartbeat of this batch naming it. A claim made
# by another transaction after this statement's snapshot is caught by ON CONFLICT ... DO UPDATE, which
# returns the row that won (a no-op update, only on that race).
_PG_WRITE = """WITH
hb AS (SELECT nextval(%(hb_seq)s::regclass) AS id, x.*
       FROM ROWS FROM (json_to_recordset(%(hb)s::json) AS (pk int, received bigint, sent bigint, ok bool,
            reasons text, disk bigint, clock bigint, body text, sig text, run bigint)) WITH ORDINALITY AS x),
hbi AS (INSERT INTO heartbeats (id, station_pk, received_us, sent_us, ok, reasons, disk_free_bytes,
                                clock_offset_ms, body, signature, run_since_us)
        SELECT id, pk, received, sent, ok, reasons, disk, clock, body, sig, run FROM hb),
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
               span_start_us = x.span_start, span_end_us = x.span_end, last_fail_us = x.fail
        FROM json_to_recordset(%(st)s::json) AS x(id int, seen bigint, hb bigint, hb_new bigint, span bigint,
             span_new bigint, span_start bigint, span_end bigint, fail bigint)
        WHERE s.id = x.id AND s.id = ANY(%(st_ids)s::int[]))
SELECT id FROM hb ORDER BY ordinality"""

_SQLITE_STATIONS = f"SELECT {_STATION_COLUMNS} FROM stations WHERE id IN ({{}})"


def _heartbeat_row(item: Pending) -> tuple[Any, ...]:
    b = item.body
    return (item.station_pk, item.received_us, b.sent_at_us, not item.reasons,
            json.dumps(item.reasons, ensure_ascii=False), b.disk_free_bytes, b.clock_offset_ms, item.raw, item.signed,
            item.run_since_us)


def _station_values(row: StationRow, hb_ids: list[int], sp_ids: list[int]) -> tuple[Any, ...]:
    return (row.last_seen_us, resolve(row.last_heartbeat, hb_ids), resolve(row.last_span, sp_ids),
            row.span_start_us, row.span_end_us, row.last_fail_us)


def _ordinal(ref: int | tuple[str, int] | None) -> tuple[int | None, int | None]:
    """A reference as (stored id, None) or (None, 1-based position in this batch's new rows)."""
    return (None, ref[1] + 1) if isinstance(ref, tuple) else (ref, None)


def json_rows(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    return json.dumps([dict(zip(names, r, strict=True)) for r in rows], ensure_ascii=False, separators=(",", ":"))


Steps = Generator[tuple[str, Any], list[tuple[Any, ...]], Any]
"""A batch's statements without I/O: yields (sql, parameters), is sent back the rows the statement
returned (empty if none). The same steps run on a blocking cursor (`run_steps`) or an asyncio one
(`run_steps_async`)."""


@dataclass
class BatchRead:
    """What a batch's read returns."""

    stations: list[tuple[Any, ...]]
    """The batch's station rows (`_STATION_COLUMNS`), locked."""
    fresh: set[tuple[int, str]]
    """The (station pk, nonce) pairs that were new (the first of duplicates within the batch only)."""
    owners: dict[str, tuple[int, str]]
    """Session id -> (owner pk, owner station id), for each session the batch's heads name."""
    audit_head: tuple[int, str] | None
    """The audit chain's head (seq, hash); None while the log is empty."""


class Backend:
    """The statements of a batch for one dialect."""

    def sql(self, statement: str) -> str:
        """A statement written with :name parameters, in this dialect's driver's style."""
        return pg_params(statement)

    def read(self, items: list[Pending]) -> Steps:
        """Lock and read the batch's stations; store the nonces of those enrolled; find (or claim) the owner
        of each session the batch's heads name; read the audit chain's head."""
        raise NotImplementedError

    def write(self, plan: Plan) -> Steps:
        """Write the plan; sets each heartbeat's id."""
        raise NotImplementedError


class Postgres(Backend):
    SEQUENCES = "SELECT pg_get_serial_sequence('heartbeats', 'id'), pg_get_serial_sequence('uptime_spans', 'id')"

    def __init__(self) -> None:
        self.sequences: tuple[str, str] | None = None

    def read(self, items: list[Pending]) -> Steps:
        nonces = json_rows(("pk", "nonce", "seen"),
                            [(i.station_pk, i.nonce, i.received_us) for i in first_of_each_nonce(items)])
        claims = json_rows(("session", "pk", "nonce"), [(i.body.recording.session_id, i.station_pk, i.nonce)
                                                         for i in items if i.body.recording is not None])
        rows = yield (_PG_READ, {"ids": sorted({i.station_pk for i in items}), "nonces": nonces,
                                 "enrolled": StationStatus.ENROLLED.value, "claims": claims,
                                 "now": items[0].received_us})
        owned = (rows[0][-2] or []) if rows else []
        head = rows[0][-1] if rows else None
        return BatchRead([r[:-3] for r in rows], {(int(r[0]), str(n)) for r in rows for n in r[-3]},
                         {str(o[0]): (int(o[1]), str(o[2])) for o in owned},
                         (int(head[0]), str(head[1])) if head else None)

    def write(self, plan: Plan) -> Steps:
        heads = [(i.station_pk, i.body.recording.session_id, i.body.recording.index, i.body.recording.chain_head,
                  i.received_us) for i in plan.heartbeats if i.body.recording is not None]
        stations = [(r.pk, r.last_seen_us, *_ordinal(r.last_heartbeat), *_ordinal(r.last_span),
                     r.span_start_us, r.span_end_us, r.last_fail_us) for r in plan.stations.values()]
        if self.sequences is None:
            found = yield (self.SEQUENCES, ())
            self.sequences = (str(found[0][0]), str(found[0][1]))
        ids = yield (_PG_WRITE, {
            "hb_seq": self.sequences[0], "sp_seq": self.sequences[1],
            "sx_ids": list(plan.span_updates), "st_ids": list(plan.stations),
            "hb": json_rows(("pk", "received", "sent", "ok", "reasons", "disk", "clock", "body", "sig", "run"),
                             [_heartbeat_row(i) for i in plan.heartbeats]),
            "wh": json_rows(("pk", "session", "idx", "head", "received"), heads),
            "sp": json_rows(("pk", "room", "start_us", "end_us", "closed"),
                             [(s.station_pk, s.room_id, s.start_us, s.end_us, s.closed) for s in plan.spans]),
            "sx": json_rows(("id", "end_us", "closed"), [(k, *v) for k, v in plan.span_updates.items()]),
            "st": json_rows(("id", "seen", "hb", "hb_new", "span", "span_new", "span_start", "span_end", "fail"),
                             stations)})
        for item, (hb_id,) in zip(plan.heartbeats, ids, strict=True):
            item.heartbeat_id = int(hb_id)


class Sqlite(Backend):
    """Statements row by row, ids as SQLite assigns them (one writer at a time: BEGIN IMMEDIATE)."""

    def sql(self, statement: str) -> str:
        return statement  # sqlite3 takes :name parameters as they are

    def read(self, items: list[Pending]) -> Steps:
        pks = sorted({i.station_pk for i in items})
        rows = yield (_SQLITE_STATIONS.format(",".join("?" * len(pks))), pks)
        enrolled = {int(r[0]) for r in rows if r[1] == StationStatus.ENROLLED.value}
        fresh: set[tuple[int, str]] = set()
        for i in first_of_each_nonce(items):
            if i.station_pk in enrolled and (
                    yield (NONCE_SQL, {"pk": i.station_pk, "nonce": i.nonce, "now": i.received_us})):
                fresh.add((i.station_pk, i.nonce))
        owners: dict[str, tuple[int, str]] = {}
        for i in items:
            rec = i.body.recording
            if rec is None or rec.session_id in owners:
                continue
            found = yield (OWNER_SQL, {"sid": rec.session_id})
            if not found and (i.station_pk, i.nonce) in fresh:
                yield (CLAIM_SQL, {"sid": rec.session_id, "pk": i.station_pk, "now": i.received_us})
                found = yield (OWNER_SQL, {"sid": rec.session_id})
            if found:
                owners[rec.session_id] = (int(found[0][0]), str(found[0][1]))
        head = yield (LAST_SQL, ())
        return BatchRead(rows, fresh, owners, (int(head[0][0]), str(head[0][1])) if head else None)

    def write(self, plan: Plan) -> Steps:
        hb_ids: list[int] = []
        for item in plan.heartbeats:
            got = yield ("INSERT INTO heartbeats (station_pk, received_us, sent_us, ok, reasons, disk_free_bytes, "
                         "clock_offset_ms, body, signature, run_since_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                         "RETURNING id",
                         _heartbeat_row(item))
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
                   "span_start_us = ?, span_end_us = ?, last_fail_us = ? WHERE id = ?",
                   (*_station_values(r, hb_ids, sp_ids), r.pk))


def first_of_each_nonce(items: list[Pending]) -> list[Pending]:
    seen: set[tuple[int, str]] = set()
    out = []
    for item in items:
        key = (item.station_pk, item.nonce)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
