"""The station's journal (SQLite, WAL): every session, run, segment and queued object,
so that a restarted agent resumes exactly where it stopped.

Segment states: captured (ffmpeg finished it) -> sealed (encrypted, signed, in the
outbox) -> uploaded objects are confirmed (the store acknowledged them). Plain bytes
are deleted once sealed; sealed bytes only once the store confirms.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT
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
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
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

    def bump_key(self, session_id: str) -> int:
        self.db.execute("UPDATE sessions SET key_count = key_count + 1 WHERE session_id=?", (session_id,))
        return int(self._one("SELECT key_count FROM sessions WHERE session_id=?", session_id)[0]) - 1

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
                salvaged: bool = False) -> int | None:
        """Give a finished segment the session's next index; None if it is already known."""
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
                    objects: list[tuple[str, str]]) -> None:
        """Atomically: the segment is sealed, the chain advances, its objects are queued."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE segments SET state='sealed', record=? WHERE session_id=? AND idx=?",
                            (record, session_id, idx))
            self.db.execute("UPDATE sessions SET chain_head=?, next_index=? WHERE session_id=?",
                            (chain, idx + 1, session_id))
            for name, path in objects:
                self._queue(session_id, name, path)

    # outbox
    def _queue(self, session_id: str, name: str, path: str) -> None:
        seq = int(self._one("SELECT COALESCE(MAX(seq)+1, 0) FROM objects")[0])
        self.db.execute(
            "INSERT OR REPLACE INTO objects (name, session_id, path, seq, state) VALUES (?,?,?,?,'pending')",
            (name, session_id, path, seq),
        )

    def queue(self, session_id: str, name: str, path: str) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._queue(session_id, name, path)

    def pending_objects(self, limit: int = 100) -> list[tuple[str, str, int]]:
        rows = self.db.execute("SELECT name, path, attempts FROM objects WHERE state='pending' ORDER BY seq LIMIT ?",
                               (limit,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

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
