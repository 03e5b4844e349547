"""The audit log: append-only and hash-chained (R13).

hash = SHA-256(bytes(prev_hash) || canonical JSON of {seq, at_us, actor, action, target, detail}).
The first entry's prev_hash is 64 zeros. `prev_hash` is unique, so concurrent writers cannot
fork the chain: the loser's insert fails and is retried.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence.canonical import canonical_json
from web.errors import AuditBroken
from web.models import AuditEntry

GENESIS = "0" * 64


def entry_hash(prev_hash: str, seq: int, at_us: int, actor: str, action: str, target: str,
               detail: dict[str, Any]) -> str:
    body = canonical_json({"seq": seq, "at_us": at_us, "actor": actor, "action": action,
                           "target": target, "detail": detail})
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


APPEND_LOCK = 7235001
"""The PostgreSQL advisory lock (transaction scope) that serialises appenders, so the chain never forks."""
LAST_SQL = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
INSERT_COLUMNS = ("seq", "at_us", "actor", "action", "target", "detail", "prev_hash", "hash")


def next_entry(last: tuple[int, str] | None, *, at_us: int, actor: str, action: str, target: str,
               detail: dict[str, Any]) -> dict[str, Any]:
    """The column values of the entry that follows `last` (its seq and hash; None for the first)."""
    prev = last[1] if last else GENESIS
    seq = (last[0] + 1) if last else 1
    return {"seq": seq, "at_us": at_us, "actor": actor, "action": action, "target": target,
            "detail": json.dumps(detail, sort_keys=True, ensure_ascii=False), "prev_hash": prev,
            "hash": entry_hash(prev, seq, at_us, actor, action, target, detail)}


def append(s: Session, *, at_us: int, actor: str, action: str, target: str = "",
           detail: dict[str, Any] | None = None) -> AuditEntry:
    """Add one entry in the caller's transaction (it commits or rolls back with the action it records)."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        s.execute(text(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})"))
    elif dialect == "sqlite":
        # No advisory lock in SQLite: a write that changes no row takes the database's write lock for the rest
        # of this transaction, so a concurrent appender waits (busy timeout) instead of reading the same last
        # entry (twenty live viewers opening the page at once each got "retry" before).
        s.execute(text("UPDATE audit_log SET seq = seq WHERE seq < 0"))
    last = s.execute(text(LAST_SQL)).first()
    entry = AuditEntry(**next_entry((int(last[0]), str(last[1])) if last else None, at_us=at_us, actor=actor,
                                    action=action, target=target, detail=detail or {}))
    s.add(entry)
    try:
        s.flush()
    except IntegrityError:
        raise AuditBroken("another writer extended the audit log at the same time; retry") from None
    return entry


@dataclass(frozen=True)
class Pending:
    """An entry to append on a raw DB-API connection (`append_steps`)."""

    at_us: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def append_steps(entries: list[Pending], postgres: bool) -> Generator[tuple[str, Any], list[tuple[Any, ...]], None]:
    """`append` for code that talks to the driver itself (the heartbeat batch): yields (sql, parameters)
    and is sent back the rows each statement returned, in the caller's transaction."""
    if not entries:
        return
    p = "%s" if postgres else "?"
    if postgres:
        yield f"SELECT pg_advisory_xact_lock({APPEND_LOCK})", ()
    rows = yield LAST_SQL, ()
    last = (int(rows[0][0]), str(rows[0][1])) if rows else None
    for e in entries:
        row = next_entry(last, at_us=e.at_us, actor=e.actor, action=e.action, target=e.target, detail=e.detail)
        yield (f"INSERT INTO audit_log ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join([p] * len(INSERT_COLUMNS))})",
               tuple(row[c] for c in INSERT_COLUMNS))
        last = (row["seq"], row["hash"])


@dataclass(frozen=True)
class AuditReport:
    entries: int
    head: str


def iter_entries(s: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq)
                         .limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(s: Session) -> AuditReport:
    """Recompute the whole chain; raise AuditBroken naming the first entry that does not match."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for e in iter_entries(s):
        if e.seq != expected_seq:
            raise AuditBroken(f"audit log entry {expected_seq} is missing (next is {e.seq})")
        if e.prev_hash != prev:
            raise AuditBroken(f"audit log entry {e.seq} does not follow entry {e.seq - 1}")
        want = entry_hash(prev, e.seq, e.at_us, e.actor, e.action, e.target, json.loads(e.detail))
        if e.hash != want:
            raise AuditBroken(f"audit log entry {e.seq} was altered (hash mismatch)")
        prev = e.hash
        expected_seq += 1
        count += 1
    return AuditReport(count, prev)
