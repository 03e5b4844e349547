"""The station's journal (SQLite, WAL): every session, run, segment and queued object,
so that a restarted agent resumes exactly where it stopped.

Segment states: captured (ffmpeg finished it) -> sealed (encrypted, signed, in the
outbox) -> uploaded objects are confirmed (the store acknowledged them). Plain bytes
are deleted once sealed; sealed bytes only once the store confirms.

A journal state that promises an object and that object's entry in the outbox are one
transaction, taken after the object's file is durable in the outbox (add_session,
add_key, mark_sealed, close_session). Each queued object keeps the SHA-256 of its bytes
(for a segment: its record's cipher_sha256), so the uploader can refuse a torn file.
Object states: pending -> confirmed, or held: quarantined (the store holds other bytes
under its name) or damaged (the local file is torn or gone); a held object stays on disk.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.owner_only import private_database
from recorder.crashpoint import crash_point
from recorder.errors import RecorderError

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
  session_id TEXT PRIMARY KEY, prefix TEXT NOT NULL, header TEXT NOT NULL,
  state TEXT NOT NULL, started_at_us INTEGER NOT NULL, planned_end_us INTEGER,
  next_index INTEGER NOT NULL DEFAULT 0, chain_head TEXT NOT NULL,
  key_count INTEGER NOT NULL DEFAULT 1, end_reason TEXT, manifest TEXT
);
CREATE TABLE IF NOT EXISTS runs (
  session_id TEXT NOT NULL, run INTEGER NOT NULL, dir TEXT NOT NULL,
  launched_us INTEGER NOT NULL, t0_us INTEGER, ended_us INTEGER, end_cause TEXT,
  PRIMARY KEY (session_id, run)
);
CREATE TABLE IF NOT EXISTS segments (
  session_id TEXT NOT NULL, idx INTEGER NOT NULL, run INTEGER NOT NULL, file TEXT NOT NULL,
  start_us INTEGER NOT NULL, duration_us INTEGER NOT NULL, state TEXT NOT NULL,
  salvaged INTEGER NOT NULL DEFAULT 0, record TEXT,
  PRIMARY KEY (session_id, idx), UNIQUE (session_id, run, file)
);
CREATE TABLE IF NOT EXISTS objects (
  name TEXT PRIMARY KEY, session_id TEXT NOT NULL, path TEXT NOT NULL, seq INTEGER NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sha256 TEXT
);
CREATE TABLE IF NOT EXISTS interruptions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, start_us INTEGER NOT NULL,
  end_us INTEGER, cause TEXT NOT NULL, reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, at_us INTEGER NOT NULL,
  kind TEXT NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class Queued:
    """An object durable in the outbox, to be queued: its store name, local path and SHA-256."""

    name: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Held:
    """An object the uploader holds back (kept locally): quarantined or damaged."""

    name: str
    session_id: str
    path: str
    state: str
    error: str


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    prefix: str
    header: str
    state: str
    started_at_us: int
    planned_end_us: int | None
    next_index: int
    chain_head: str
    key_count: int


@dataclass(frozen=True)
class RunRow:
    session_id: str
    run: int
    dir: str
    launched_us: int
    t0_us: int | None
    ended_us: int | None


@dataclass(frozen=True)
class SegmentRow:
    session_id: str
    idx: int
    run: int
    file: str
    start_us: int
    duration_us: int
    state: str
    salvaged: bool
    record: str | None


class Journal:
    """One connection to the journal; each thread opens its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.db = sqlite3.connect(private_database(path), timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(objects)").fetchall()}
            if "sha256" not in columns:  # a journal written before objects kept their digest
                self.db.execute("ALTER TABLE objects ADD COLUMN sha256 TEXT")
        except sqlite3.Error as err:
            raise RecorderError(f"journal {path} cannot be opened: {err}") from None

    def close(self) -> None:
        self.db.close()

    def tx(self) -> sqlite3.Connection:
        """Use as `with journal.tx():` for an atomic group of writes."""
        return self.db

    def _one(self, sql: str, *args: Any) -> Any:
        return self.db.execute(sql, args).fetchone()

    # sessions
    def add_session(self, s: SessionRow) -> None:
        self.db.execute(
            "INSERT INTO sessions (session_id, prefix, header, state, started_at_us, planned_end_us,"
            " next_index, chain_head, key_count) VALUES (?,?,?,?,?,?,?,?,?)",
            (s.session_id, s.prefix, s.header, s.state, s.started_at_us, s.planned_end_us,
             s.next_index, s.chain_head, s.key_count),
        )

    def session(self, session_id: str) -> SessionRow:
        row = self._one("SELECT session_id, prefix, header, state, started_at_us, planned_end_us, next_index,"
                        " chain_head, key_count FROM sessions WHERE session_id=?", session_id)
        if row is None:
            raise RecorderError(f"session {session_id} is not in the journal {self.path}")
        return SessionRow(*row)

    def manifest(self, session_id: str) -> str | None:
        """The signed manifest of a closed session, as the canonical JSON text that was uploaded."""
        row = self._one("SELECT manifest FROM sessions WHERE session_id=?", session_id)
        return None if row is None else row[0]

    def unstamped_manifests(self, token_suffix: str) -> list[tuple[str, str, str]]:
        """(session id, prefix, manifest text) of every sealed manifest whose time-stamp token
        (the object `prefix + token_suffix`) is not queued."""
        rows = self.db.execute(
            "SELECT session_id, prefix, manifest FROM sessions WHERE state='closed' AND manifest IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM objects WHERE objects.name = sessions.prefix || ?)"
            " ORDER BY started_at_us", (token_suffix,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def open_sessions(self) -> list[SessionRow]:
        rows = self.db.execute("SELECT session_id FROM sessions WHERE state != 'closed' ORDER BY started_at_us")
        return [self.session(r[0]) for r in rows.fetchall()]

    def set_session_state(self, session_id: str, state: str, end_reason: str | None = None,
                          manifest: str | None = None) -> None:
        self.db.execute("UPDATE sessions SET state=?, end_reason=COALESCE(?, end_reason),"
                        " manifest=COALESCE(?, manifest) WHERE session_id=?",
                        (state, end_reason, manifest, session_id))

    def add_session_queued(self, s: SessionRow, event: tuple[int, str, str], objects: list[Queued]) -> None:
        """Atomically: the session row, its first event and its header and locator in the outbox."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.add_session(s)
            self.add_event(s.session_id, *event)
            for obj in objects:
                self.queue_within(s.session_id, obj)

    def add_key(self, session_id: str, key_index: int, obj: Queued) -> None:
        """Atomically: the session counts data key `key_index` and its key object is queued."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute("UPDATE sessions SET key_count=? WHERE session_id=? AND key_count=?",
                                  (key_index + 1, session_id, key_index))
            if cur.rowcount != 1:
                raise RecorderError(f"journal {self.path}: session {session_id} does not expect key {key_index}")
            self.queue_within(session_id, obj)

    def close_session(self, session_id: str, end_us: int, end_reason: str, manifest: str, obj: Queued) -> None:
        """Atomically: open interruptions end, the end event, state closed with its manifest, manifest queued."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.close_interruptions(session_id, end_us)
            self.add_event(session_id, end_us, "end", end_reason)
            self.set_session_state(session_id, "closed", end_reason, manifest)
            self.queue_within(session_id, obj)

    # runs
    def add_run(self, r: RunRow) -> None:
        self.db.execute("INSERT INTO runs (session_id, run, dir, launched_us, t0_us) VALUES (?,?,?,?,?)",
                        (r.session_id, r.run, r.dir, r.launched_us, r.t0_us))

    def set_run_t0(self, session_id: str, run: int, t0_us: int) -> None:
        self.db.execute("UPDATE runs SET t0_us=? WHERE session_id=? AND run=? AND t0_us IS NULL",
                        (t0_us, session_id, run))

    def end_run(self, session_id: str, run: int, ended_us: int, cause: str) -> None:
        self.db.execute("UPDATE runs SET ended_us=?, end_cause=? WHERE session_id=? AND run=? AND ended_us IS NULL",
                        (ended_us, cause, session_id, run))

    def runs(self, session_id: str) -> list[RunRow]:
        rows = self.db.execute("SELECT session_id, run, dir, launched_us, t0_us, ended_us FROM runs"
                               " WHERE session_id=? ORDER BY run", (session_id,)).fetchall()
        return [RunRow(*r) for r in rows]

    # segments
    def capture(self, session_id: str, run: int, file: str, start_us: int, duration_us: int,
                salvaged: bool = False, if_first: tuple[int, int, str, str] | None = None) -> int | None:
        """Give a finished segment the session's next index; None if it is already known.

        `if_first` (start, end, cause, reason): an interruption declared with the session's first
        segment, in the same transaction (a late start: a crash between the two would lose it)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            known = self._one("SELECT idx FROM segments WHERE session_id=? AND run=? AND file=?",
                              session_id, run, file)
            if known is not None:
                return None
            idx = int(self._one("SELECT COALESCE(MAX(idx)+1, 0) FROM segments WHERE session_id=?",
                                session_id)[0])
            self.db.execute(
                "INSERT INTO segments (session_id, idx, run, file, start_us, duration_us, state, salvaged)"
                " VALUES (?,?,?,?,?,?, 'captured', ?)",
                (session_id, idx, run, file, start_us, duration_us, int(salvaged)),
            )
            if idx == 0 and if_first is not None:
                crash_point("capture.first_journaled")
                self.add_interruption(session_id, *if_first)
            return idx

    def segments(self, session_id: str, state: str | None = None) -> list[SegmentRow]:
        sql = ("SELECT session_id, idx, run, file, start_us, duration_us, state, salvaged, record"
               " FROM segments WHERE session_id=?")
        args: tuple[Any, ...] = (session_id,)
        if state:
            sql += " AND state=?"
            args += (state,)
        rows = self.db.execute(sql + " ORDER BY idx", args).fetchall()
        return [SegmentRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8]) for r in rows]

    def known_files(self, session_id: str, run: int) -> set[str]:
        rows = self.db.execute("SELECT file FROM segments WHERE session_id=? AND run=?", (session_id, run))
        return {r[0] for r in rows.fetchall()}

    def mark_sealed(self, session_id: str, idx: int, record: str, chain: str,
                    objects: list[Queued]) -> None:
        """Atomically: the segment is sealed, the chain advances, its objects are queued."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE segments SET state='sealed', record=? WHERE session_id=? AND idx=?",
                            (record, session_id, idx))
            self.db.execute("UPDATE sessions SET chain_head=?, next_index=? WHERE session_id=?",
                            (chain, idx + 1, session_id))
            for obj in objects:
                self.queue_within(session_id, obj)

    def drop_lost(self, session_id: str, idx: int, cause: str, reason: str, at_us: int) -> None:
        """A captured segment whose plain file is gone: it leaves the chain as a declared loss.

        Captured segments are not sealed, so no index of theirs is public yet: the ones after
        it move down by one, and its time becomes an interruption with the cause.
        """
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self._one("SELECT start_us, duration_us, file FROM segments WHERE session_id=? AND idx=?"
                            " AND state='captured'", session_id, idx)
            if row is None:
                return
            self.db.execute("DELETE FROM segments WHERE session_id=? AND idx=?", (session_id, idx))
            self.db.execute("UPDATE segments SET idx=idx-1 WHERE session_id=? AND idx>? AND state='captured'",
                            (session_id, idx))
            self.db.execute("INSERT INTO interruptions (session_id, start_us, end_us, cause, reason)"
                            " VALUES (?,?,?,?,?)", (session_id, row[0], row[0] + row[1], cause, reason))
            self.add_event(session_id, at_us, "segment_lost", f"{row[2]}: {reason}")

    def add_sealed_segment(self, session_id: str, record: dict[str, Any], record_text: str) -> None:
        """A sealed segment known only from its signed record (the journal being rebuilt), inside a transaction."""
        self.db.execute(
            "INSERT INTO segments (session_id, idx, run, file, start_us, duration_us, state, salvaged, record)"
            " VALUES (?,?,?,?,?,?, 'sealed', ?, ?)",
            (session_id, record["index"], record["run"], f"rebuilt-{record['index']:08d}", record["start_us"],
             record["duration_us"], int(bool(record["salvaged"])), record_text))

    def add_interruption(self, session_id: str, start_us: int, end_us: int, cause: str, reason: str) -> None:
        self.db.execute("INSERT INTO interruptions (session_id, start_us, end_us, cause, reason) VALUES (?,?,?,?,?)",
                        (session_id, start_us, end_us, cause, reason))

    # outbox
    def queue_within(self, session_id: str, obj: Queued) -> None:
        """Queue an object inside a transaction the caller holds."""
        seq = int(self._one("SELECT COALESCE(MAX(seq)+1, 0) FROM objects")[0])
        self.db.execute(
            "INSERT OR REPLACE INTO objects (name, session_id, path, seq, state, sha256)"
            " VALUES (?,?,?,?,'pending',?)",
            (obj.name, session_id, obj.path, seq, obj.sha256),
        )

    def queue(self, session_id: str, obj: Queued) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.queue_within(session_id, obj)

    def object_state(self, name: str) -> str | None:
        row = self._one("SELECT state FROM objects WHERE name=?", name)
        return None if row is None else str(row[0])

    def pending_objects(self, limit: int = 100, session_id: str | None = None) -> list[tuple[str, str, str | None]]:
        """(name, path, expected SHA-256) of pending objects (of one session, if given), in queue order.

        A ciphertext queued by a journal that did not keep digests is checked against its record's cipher_sha256.
        """
        where, args = ("o.state='pending'", ()) if session_id is None else ("o.state='pending' AND o.session_id=?",
                                                                            (session_id,))
        rows = self.db.execute(
            "SELECT o.name, o.path, COALESCE(o.sha256, json_extract(s.record, '$.cipher_sha256'))"
            " FROM objects o LEFT JOIN segments s ON o.sha256 IS NULL AND s.session_id=o.session_id"
            " AND o.name LIKE '%/seg/%.bin' AND s.idx=CAST(substr(o.name, -12, 8) AS INTEGER)"
            f" WHERE {where} ORDER BY o.seq LIMIT ?", (*args, limit)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def hold(self, name: str, state: str, error: str, at_us: int) -> None:
        """Take an object out of the queue, kept locally ('quarantined' or 'damaged'); its session gets an event."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE objects SET state=?, last_error=?, attempts=attempts+1 WHERE name=?",
                            (state, error, name))
            row = self._one("SELECT session_id FROM objects WHERE name=?", name)
            if row is not None:
                self.add_event(row[0], at_us, f"object_{state}", error[:500])

    def retry_held(self, note: str) -> list[str]:
        """Put every held object back in the queue (the operator put the store or the outbox right). The uploader
        checks each again exactly as the first time: a torn file or other bytes in the store hold it again."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            names = [r[0] for r in self.db.execute(
                "SELECT name FROM objects WHERE state IN ('quarantined', 'damaged') ORDER BY seq").fetchall()]
            self.db.execute("UPDATE objects SET state='pending', last_error=?"
                            " WHERE state IN ('quarantined', 'damaged')", (note[:500],))
        return names

    def held_objects(self) -> list[Held]:
        rows = self.db.execute("SELECT name, session_id, path, state, COALESCE(last_error, '') FROM objects"
                               " WHERE state IN ('quarantined', 'damaged') ORDER BY seq").fetchall()
        return [Held(*r) for r in rows]

    def pending_count(self, session_id: str | None = None) -> int:
        if session_id:
            return int(self._one("SELECT COUNT(*) FROM objects WHERE state='pending' AND session_id=?",
                                 session_id)[0])
        return int(self._one("SELECT COUNT(*) FROM objects WHERE state='pending'")[0])

    def confirm(self, name: str) -> None:
        self.db.execute("UPDATE objects SET state='confirmed', last_error=NULL WHERE name=?", (name,))

    def upload_failed(self, name: str, error: str) -> None:
        self.db.execute("UPDATE objects SET attempts=attempts+1, last_error=? WHERE name=?", (error, name))

    # interruptions and events
    def open_interruption(self, session_id: str, start_us: int, cause: str, reason: str = "") -> None:
        self.db.execute("INSERT INTO interruptions (session_id, start_us, cause, reason) VALUES (?,?,?,?)",
                        (session_id, start_us, cause, reason))

    def close_interruptions(self, session_id: str, end_us: int) -> None:
        self.db.execute("UPDATE interruptions SET end_us=? WHERE session_id=? AND end_us IS NULL",
                        (end_us, session_id))

    def interruptions(self, session_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT start_us, end_us, cause, reason FROM interruptions WHERE session_id=?"
                               " ORDER BY start_us", (session_id,)).fetchall()
        return [{"start_us": r[0], "end_us": r[1], "cause": r[2], "reason": r[3]} for r in rows]

    def add_event(self, session_id: str, at_us: int, kind: str, detail: str = "") -> None:
        self.db.execute("INSERT INTO events (session_id, at_us, kind, detail) VALUES (?,?,?,?)",
                        (session_id, at_us, kind, detail))

    def events(self, session_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT at_us, kind, detail FROM events WHERE session_id=? ORDER BY id",
                               (session_id,)).fetchall()
        return [{"at_us": r[0], "kind": r[1], "detail": r[2]} for r in rows]
