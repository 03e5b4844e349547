"""The uploader: drains the outbox into the object store, in order, with retry and back-off.

An object is deleted locally only after the store confirmed it (R10). A store that is
away only delays uploads; nothing is dropped.

One object never blocks the queue. Before a put, the local bytes are checked against the
SHA-256 the journal queued them with (a segment's is its record's cipher_sha256): a torn
or missing file is held as 'damaged'. The store refusing a name because it already holds
other bytes holds the object as 'quarantined' (the same bytes are a confirmation). A held
object stays in the outbox, is logged as one error line and a session event, and
`irms-agent upload` reports it in its exit status; the queue moves on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import threading
from pathlib import Path

from recorder.clock import Clock
from recorder.crashpoint import crash_point
from recorder.errors import disk_full
from recorder.journal import Journal
from storage.base import ObjectStore
from storage.errors import ObjectExists, StoreError

log = logging.getLogger(__name__)


class Uploader:
    """A background thread that uploads whatever the journal says is pending."""

    def __init__(self, journal_path: Path, store: ObjectStore, clock: Clock, *,
                 retention_days: int = 0, max_backoff: float = 5.0) -> None:
        self.journal_path = journal_path
        self.store = store
        self.clock = clock
        self.retention_days = retention_days
        self.max_backoff = max_backoff
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.draining = threading.Event()
        self.thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.uploaded = 0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="uploader", daemon=True)
        self.thread.start()

    def kick(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread:
            self.thread.join(timeout=30)

    def _retain_until(self) -> dt.datetime | None:
        if self.retention_days <= 0:
            return None
        now = dt.datetime.fromtimestamp(self.clock.now_us() / 1e6, tz=dt.UTC)
        return now + dt.timedelta(days=self.retention_days)

    def drain_once(self, journal: Journal) -> tuple[int, bool]:
        """Upload every pending object once, in queue order. Returns (uploaded, had_error)."""
        done = 0
        for name, path, sha256 in journal.pending_objects():
            if self.stopping.is_set():
                break
            local = Path(path)
            try:
                data = local.read_bytes()
            except FileNotFoundError:
                # Uploaded and deleted before a crash lost the confirmation.
                try:
                    in_store = self.store.exists(name)
                except StoreError as err:
                    self.last_error = str(err)
                    journal.upload_failed(name, str(err))
                    return done, True
                if in_store:
                    journal.confirm(name)
                    continue
                self._hold(journal, name, "damaged", f"outbox file {local} is missing and {name} is not in the store")
                continue
            if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
                self._hold(journal, name, "damaged",
                           f"outbox file {local} is damaged ({len(data)} bytes, SHA-256 differs from the journal's);"
                           " kept, not uploaded")
                continue
            crash_point("upload.before_put")
            try:
                self.store.put(name, data, retain_until=self._retain_until())
            except ObjectExists:
                self._hold(journal, name, "quarantined",
                           f"store {self.store.url} already holds other bytes under {name}; local copy kept in {local}")
                continue
            except StoreError as err:
                self.last_error = str(err)
                journal.upload_failed(name, str(err))
                return done, True
            journal.confirm(name)
            local.unlink(missing_ok=True)
            log.debug("uploaded %s at %d", name, self.clock.now_us())
            done += 1
            self.uploaded += 1
        self.last_error = None
        return done, False

    def _hold(self, journal: Journal, name: str, state: str, error: str) -> None:
        """Take one object out of the queue (kept locally), say so once, and move on."""
        log.error("%s: %s", state, error)
        journal.hold(name, state, error, self.clock.now_us())

    def _loop(self) -> None:
        journal = Journal(self.journal_path)
        backoff = 0.2
        try:
            while not self.stopping.is_set():
                try:
                    done, failed = self.drain_once(journal)
                except (OSError, sqlite3.Error) as err:
                    if not disk_full(err):
                        raise
                    # The journal cannot note a confirmation while the disk is full: try again later.
                    self.last_error, failed, done = f"station disk full: {err}", True, 0
                if failed:
                    log.warning("upload failed (%s); retrying in %.1f s", self.last_error, backoff)
                    self.wake.wait(backoff)
                    self.wake.clear()
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                backoff = 0.2
                if self.draining.is_set() and journal.pending_count() == 0:
                    return
                if done:
                    continue  # a backlog is read 100 at a time: the next batch goes now, not after the idle wait
                self.wake.wait(1.0)
                self.wake.clear()
        finally:
            journal.close()

    def drain(self, timeout: float) -> bool:
        """Keep uploading until nothing is pending or `timeout` passes; True if all went."""
        self.draining.set()
        self.wake.set()
        if self.thread:
            self.thread.join(timeout=timeout)
        finished = self.thread is None or not self.thread.is_alive()
        self.stop()
        return finished
