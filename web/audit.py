"""The audit log: append-only and hash-chained (R13).

hash = SHA-256(bytes(prev_hash) || canonical JSON of {seq, at_us, actor, action, target, detail}).
The first entry's prev_hash is 64 zeros. `prev_hash` is unique, so concurrent writers cannot
fork the chain: the loser's insert fails and is retried.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
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


def append(s: Session, *, at_us: int, actor: str, action: str, target: str = "",
           detail: dict[str, Any] | None = None) -> AuditEntry:
    """Add one entry in the caller's transaction (it commits or rolls back with the action it records)."""
    detail = detail or {}
    if s.get_bind().dialect.name == "postgresql":
        # Serialise appenders for this transaction so the chain never forks under several workers.
        s.execute(text("SELECT pg_advisory_xact_lock(7235001)"))
    last = s.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    prev = last.hash if last else GENESIS
    seq = (last.seq + 1) if last else 1
    entry = AuditEntry(seq=seq, at_us=at_us, actor=actor, action=action, target=target,
                       detail=json.dumps(detail, sort_keys=True, ensure_ascii=False), prev_hash=prev,
                       hash=entry_hash(prev, seq, at_us, actor, action, target, detail))
    s.add(entry)
    try:
        s.flush()
    except IntegrityError:
        raise AuditBroken("another writer extended the audit log at the same time; retry") from None
    return entry


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
