"""The uploader sends each sealed object at once (issue 15: live latency): a kick wakes it from its idle wait,
and a backlog longer than one read of the queue (100) goes on without that wait between reads."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from evidence.durable import write_durable
from recorder.clock import SystemClock
from recorder.journal import Journal, Queued
from recorder.uploader import Uploader
from storage.base import ObjectInfo
from storage.file import FileStore

IDLE_WAIT_S = 1.0  # the uploader's wait when nothing is pending (recorder/uploader.py)


class TimedStore(FileStore):
    """The real file store, noting when each put finished."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.put_at: list[float] = []

    def put(self, name: str, data: bytes, **kw: object) -> ObjectInfo:
        info = super().put(name, data, **kw)  # type: ignore[arg-type]
        self.put_at.append(time.monotonic())
        return info


def queue(journal: Journal, outbox: Path, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        data = f"object {i}".encode()
        path = outbox / f"obj{i:05d}"
        write_durable(path, data)
        journal.queue("s1", Queued(f"HN/P1/s1/seg/{i:08d}.json", str(path), hashlib.sha256(data).hexdigest()))


def start(tmp_path: Path) -> tuple[Uploader, Journal, TimedStore]:
    store = TimedStore(tmp_path / "store")
    journal = Journal(tmp_path / "journal.db")
    up = Uploader(tmp_path / "journal.db", store, SystemClock())
    up.start()
    return up, journal, store


def test_a_kicked_object_goes_at_once(tmp_path: Path) -> None:
    up, journal, store = start(tmp_path)
    try:
        time.sleep(0.3)  # idle: nothing pending, waiting
        queue(journal, tmp_path / "outbox", 1)
        kicked = time.monotonic()
        up.kick()
        deadline = kicked + 5
        while not store.put_at and time.monotonic() < deadline:
            time.sleep(0.005)
        assert store.put_at, "never uploaded"
        assert store.put_at[0] - kicked < IDLE_WAIT_S / 2, store.put_at[0] - kicked
        while journal.pending_count() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert journal.pending_count() == 0  # confirmed in the journal (the local copy can go)
    finally:
        up.stop()
        journal.close()


def test_a_backlog_goes_on_without_the_idle_wait(tmp_path: Path) -> None:
    store = TimedStore(tmp_path / "store")
    journal = Journal(tmp_path / "journal.db")
    queue(journal, tmp_path / "outbox", 250)  # the store was away: 250 objects waiting
    up = Uploader(tmp_path / "journal.db", store, SystemClock())
    up.start()
    try:
        deadline = time.monotonic() + 60
        while len(store.put_at) < 250 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(store.put_at) == 250
        gaps = [b - a for a, b in zip(store.put_at, store.put_at[1:], strict=False)]
        # between the 100th and 101st, 200th and 201st: the next read of the queue, not the idle wait
        assert max(gaps[99], gaps[199]) < IDLE_WAIT_S / 2, (gaps[99], gaps[199])
    finally:
        up.stop()
        journal.close()
