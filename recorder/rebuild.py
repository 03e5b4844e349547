"""A damaged or lost journal: found at start, moved aside (kept), rebuilt from what describes itself.

The journal is checked before the agent uses it: it must open, pass SQLite's quick_check,
and each open session's chain head must be its last sealed record's chain. A journal that
is intact but *behind* (its WAL torn or lost in a power cut, so recent transactions are
gone) is found by what it cannot explain: an outbox or spool holding a session or object
it does not know, beyond the one object a kill -9 may leave written but not yet queued,
or a store already holding the next record or key of a session it has open.

Either way the journal's files are moved to IRMS_HOME/journal-damaged/<time>/ and a new
journal is rebuilt from the signed objects in the outbox and the store: each session's
header, its records as far as they chain from the header with their ciphertext present,
its key objects, its manifest. Gaps between the rebuilt records (the old journal's pauses
and losses) become declared interruptions; the caller closes every session left open as
`recovered_after_crash` with a crash interruption, and keeps the spool's plain files in IRMS_HOME/inspect.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.canonical import canonical_json, parse_json_object
from evidence.chain import chain_genesis
from evidence.durable import fsync_dir
from evidence.errors import FormatError, SignatureError
from evidence.formats import (
    head_token_name,
    header_name,
    key_name,
    locator_name,
    manifest_name,
    record_name,
    segment_name,
    token_name,
)
from evidence.keys import verify_document
from recorder.errors import RecorderError
from recorder.journal import Journal, Queued, SessionRow
from storage.base import ObjectStore
from storage.errors import StoreError

log = logging.getLogger(__name__)

DAMAGED_DIR = "journal-damaged"
GAP_US = 300_000  # what the verifier (V16) accepts between consecutive segments without an interruption


def journal_damage(path: Path) -> str | None:
    """Why the journal at `path` cannot be trusted, or None (also when there is none yet)."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(path, timeout=30)
        try:
            rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
            if rows != ["ok"]:
                return "integrity check failed: " + "; ".join(rows[:3])
            for sid, chain, next_index in db.execute(
                    "SELECT session_id, chain_head, next_index FROM sessions WHERE state != 'closed'").fetchall():
                sealed = db.execute("SELECT COUNT(*), MAX(idx) FROM segments WHERE session_id=? AND state='sealed'",
                                    (sid,)).fetchone()
                if sealed[0] != next_index or (sealed[0] and sealed[1] != next_index - 1):
                    return f"session {sid}: {sealed[0]} sealed segments but next index {next_index}"
                if sealed[0]:
                    rec = db.execute("SELECT record FROM segments WHERE session_id=? AND idx=?",
                                     (sid, next_index - 1)).fetchone()
                    if json.loads(rec[0]).get("chain") != chain:
                        return f"session {sid}: chain head is not its last record's chain"
        finally:
            db.close()
    except (sqlite3.Error, ValueError, TypeError, AttributeError) as err:
        return f"cannot be read: {err}"
    return None


def move_aside(path: Path, home: Path, now_us: int) -> Path:
    """Move the journal's files (database, WAL, shared memory) into a kept folder; return it."""
    stamp = dt.datetime.fromtimestamp(now_us / 1e6, tz=dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    kept = home / DAMAGED_DIR / stamp
    kept.mkdir(parents=True, exist_ok=True, mode=0o700)
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            os.replace(src, kept / src.name)
    fsync_dir(kept)
    fsync_dir(path.parent)
    return kept


def outbox_objects(outbox: Path, sid: str) -> dict[str, Path]:
    """The object names waiting in a session's outbox folder, with their files."""
    folder = outbox / sid
    if not folder.is_dir():
        return {}
    return {p.name.replace("__", "/"): p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def journal_behind(journal: Journal, outbox: Path, spool: Path, store: ObjectStore) -> str | None:
    """What the outbox, spool or store hold that this journal cannot explain, or None."""
    for folder in sorted(outbox.iterdir()) if outbox.is_dir() else []:
        names = outbox_objects(outbox, folder.name)
        unknown = {n for n in names if journal.object_state(n) is None}
        if not unknown:
            continue
        try:
            s = journal.session(folder.name)
        except RecorderError:
            if all(n.endswith("/session.json") or n.startswith("sessions/") for n in unknown):
                continue  # killed before the session's start was journaled: it never began
            return f"the outbox holds session {folder.name}, which the journal does not know"
        allowed = {key_name(s.prefix, s.key_count), segment_name(s.prefix, s.next_index),
                   record_name(s.prefix, s.next_index)}
        if s.state != "closed":
            allowed.add(manifest_name(s.prefix))
        else:
            allowed.add(token_name(s.prefix))  # a time-stamp token written, its queueing cut by a crash
        # Time-stamp tokens over chain heads (seg/N.tsr) of sealed segments: written, their queueing cut by a crash.
        extra = sorted(n for n in unknown - allowed
                       if not (n.endswith(".tsr") and n.startswith(s.prefix + "seg/")))
        if extra:
            return f"the outbox holds {extra[0]}, which the journal does not know"
    for folder in sorted(spool.iterdir()) if spool.is_dir() else []:
        try:
            journal.session(folder.name)
        except RecorderError:
            if any(folder.rglob("*.ts")):
                return f"the spool holds session {folder.name}, which the journal does not know"
    for s in journal.open_sessions():
        # (A manifest in the store for an open session is adopted by Recorder.recover, not rebuilt.)
        for name in (record_name(s.prefix, s.next_index), key_name(s.prefix, s.key_count)):
            if journal.object_state(name) is not None:
                continue
            try:
                if store.exists(name):
                    return f"the store holds {name}, which the journal does not know"
            except StoreError:
                return None  # cannot tell while the store is away; the next start asks again
    return None


@dataclass
class Found:
    """What describes one session, gathered from the outbox and the store."""

    sid: str
    prefix: str
    header: dict[str, Any]
    header_bytes: bytes
    records: list[dict[str, Any]]
    key_count: int
    manifest: bytes | None
    queue: list[Queued]
    left: list[Path]  # outbox files that do not fit the rebuilt chain: moved to inspect/, never queued


class Rebuilder:
    """Gathers a session's signed objects from the outbox and the store and writes them into a new journal."""

    def __init__(self, journal: Journal, outbox: Path, spool: Path, store: ObjectStore,
                 station_key: Ed25519PublicKey) -> None:
        self.journal = journal
        self.outbox = outbox
        self.spool = spool
        self.store = store
        self.station_key = station_key

    def session_ids(self) -> list[str]:
        ids = {p.name for p in self.outbox.iterdir() if outbox_objects(self.outbox, p.name)} if self.outbox.is_dir() \
            else set()
        if self.spool.is_dir():
            ids |= {p.name for p in self.spool.iterdir() if p.is_dir()}
        return sorted(ids)

    def _fetch(self, local: dict[str, Path], name: str) -> bytes | None:
        if name in local:
            return local[name].read_bytes()
        try:
            return self.store.get(name) if self.store.exists(name) else None
        except StoreError as err:
            raise RecorderError(f"rebuilding the journal needs the store {self.store.url}: {err}") from None

    def _signed(self, data: bytes | None, what: str, sid: str) -> dict[str, Any] | None:
        if data is None:
            return None
        try:
            doc = parse_json_object(data, what)
            verify_document(doc, self.station_key, what)
        except (FormatError, SignatureError) as err:
            log.error("rebuilding the journal: %s is not usable (%s); left where it is", what, err)
            return None
        return doc if doc.get("session_id") == sid else None

    def _prefix(self, sid: str, local: dict[str, Path]) -> str | None:
        marker = f"/{sid}/"
        for name in local:
            if marker in name:
                return name[: name.index(marker) + len(marker)]
        data = self._fetch(local, locator_name(sid))
        if data is None:
            return None
        try:
            return str(parse_json_object(data, "locator")["prefix"])
        except (FormatError, KeyError):
            return None

    def gather(self, sid: str) -> Found | None:
        local = outbox_objects(self.outbox, sid)
        prefix = self._prefix(sid, local)
        if prefix is None:
            log.error("rebuilding the journal: session %s has no header or locator in the outbox or the store", sid)
            return None
        header_bytes = self._fetch(local, header_name(prefix))
        header = self._signed(header_bytes, f"header {header_name(prefix)}", sid)
        if header is None or header_bytes is None:
            log.error("rebuilding the journal: session %s has no usable header", sid)
            return None
        queue: list[Queued] = []

        def keep(name: str, sha256: str | None = None) -> None:
            if name in local:
                data = local[name].read_bytes()
                queue.append(Queued(name, str(local[name]), sha256 or hashlib.sha256(data).hexdigest()))

        keep(header_name(prefix))
        keep(locator_name(sid))
        records: list[dict[str, Any]] = []
        chain = chain_genesis(header)
        while True:
            idx = len(records)
            rname, sname = record_name(prefix, idx), segment_name(prefix, idx)
            rec = self._signed(self._fetch(local, rname), f"record {rname}", sid)
            if rec is None or rec.get("index") != idx or rec.get("prev_chain") != chain:
                break
            if sname not in local and not self._exists(sname):
                break
            records.append(rec)
            chain = str(rec["chain"])
            keep(rname)
            keep(sname, str(rec["cipher_sha256"]))  # a torn ciphertext is then held by the uploader
            keep(head_token_name(prefix, idx))  # a time-stamp token over this chain head, if one was written
        key_count = 1
        while self._signed(self._fetch(local, key_name(prefix, key_count)), "key object", sid) is not None:
            keep(key_name(prefix, key_count))
            key_count += 1
        manifest_bytes = self._fetch(local, manifest_name(prefix))
        manifest = self._signed(manifest_bytes, f"manifest {manifest_name(prefix)}", sid)
        ends_chain = manifest is not None and manifest.get("segment_count") == len(records) \
            and manifest.get("chain_head") == chain
        if manifest is not None and not ends_chain:
            log.error("rebuilding the journal: manifest of %s does not end the rebuilt chain; left where it is", sid)
            manifest = None
        if manifest is not None:
            keep(manifest_name(prefix))
            keep(token_name(prefix))
        left = sorted(set(local) - {q.name for q in queue})
        if left:
            log.error("rebuilding the journal: %d objects of session %s do not fit its chain; kept unqueued "
                      "(first: %s)", len(left), sid, left[0])
        return Found(sid, prefix, header, header_bytes, records, key_count,
                     manifest_bytes if manifest is not None else None, queue, [local[n] for n in left])

    def _exists(self, name: str) -> bool:
        try:
            return self.store.exists(name)
        except StoreError as err:
            raise RecorderError(f"rebuilding the journal needs the store {self.store.url}: {err}") from None

    def write(self, f: Found, now_us: int, note: str) -> bool:
        """Put a gathered session into the journal; True if it is left open (to be closed by the caller)."""
        chain = f.records[-1]["chain"] if f.records else chain_genesis(f.header)
        state = "closed" if f.manifest is not None else "recording"
        j = self.journal
        with j.tx():
            j.db.execute("BEGIN IMMEDIATE")
            j.add_session(SessionRow(f.sid, f.prefix, f.header_bytes.decode(), state, int(f.header["started_at_us"]),
                                     None, len(f.records), chain, f.key_count))
            if f.manifest is not None:
                manifest = json.loads(f.manifest)
                j.set_session_state(f.sid, "closed", str(manifest.get("end_reason")), f.manifest.decode())
            for rec in f.records:
                j.add_sealed_segment(f.sid, rec, canonical_json(rec).decode())
            if f.manifest is None:
                j.add_event(f.sid, now_us, "journal_rebuilt", note[:500])
                for prev, nxt in zip(f.records, f.records[1:], strict=False):
                    end = prev["start_us"] + prev["duration_us"]
                    if nxt["start_us"] - end > GAP_US:
                        j.add_interruption(f.sid, end, nxt["start_us"], "crash",
                                           "gap found when the journal was rebuilt; its cause was in the lost journal")
                last = f.records[-1] if f.records else None
                start = last["start_us"] + last["duration_us"] if last else int(f.header["started_at_us"])
                j.open_interruption(f.sid, start, "crash", "agent restarted with a damaged journal")
            for q in f.queue:
                j.queue_within(f.sid, q)
        return f.manifest is None
