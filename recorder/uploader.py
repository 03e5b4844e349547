"""The uploader: drains the outbox into the object store, in order, with retry and back-off.

An object is deleted locally only after the store confirmed it (R10). A store that is
away only delays uploads; nothing is dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from pathlib import Path

from recorder.clock import Clock
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
        for name, path, _attempts in journal.pending_objects():
            if self.stopping.is_set():
                break
            local = Path(path)
            try:
                data = local.read_bytes()
            except FileNotFoundError:
                # Uploaded and deleted before a crash lost the confirmation.
                if self.store.exists(name):
                    journal.confirm(name)
                    continue
                journal.upload_failed(name, "local file missing")
                log.error("outbox file %s for %s is missing and not in the store", local, name)
                continue
            try:
                self.store.put(name, data, retain_until=self._retain_until())
            except ObjectExists:
                log.error("store already holds a different %s; keeping the local copy", name)
                journal.upload_failed(name, "different object already in store")
                return done, True
            except StoreError as err:
                self.last_error = str(err)
                journal.upload_failed(name, str(err))
                return done, True
            journal.confirm(name)
            local.unlink(missing_ok=True)
            done += 1
            self.uploaded += 1
        self.last_error = None
        return done, False

    def _loop(self) -> None:
        journal = Journal(self.journal_path)
        backoff = 0.2
        try:
            while not self.stopping.is_set():
                try:
                    _done, failed = self.drain_once(journal)
                except (OSError, sqlite3.Error) as err:
                    if not disk_full(err):
                        raise
                    # The journal cannot note a confirmation while the disk is full: try again later.
                    self.last_error, failed = f"station disk full: {err}", True
                if failed:
                    log.warning("upload failed (%s); retrying in %.1f s", self.last_error, backoff)
                    self.wake.wait(backoff)
                    self.wake.clear()
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                backoff = 0.2
                if self.draining.is_set() and journal.pending_count() == 0:
                    return
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
