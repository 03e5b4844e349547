"""Group commit of heartbeats: one transaction per batch of concurrent requests, one batch written at a time.

The heartbeats that arrive while a batch is being written make the next one, written in one
transaction with one commit; a request is answered only after its batch committed, so durability
is unchanged. `GroupCommit` is for threads (the Flask app: the thread that finds no batch being
written writes the queue, then hands the next queue to the first thread waiting);
`AsyncGroupCommit` for coroutines (the event loop of a uvicorn worker, on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from web.coverage import Policy
from web.db import Database
from web.errors import DatabaseError
from web.heartbeat.batch import batch_steps, db_failure, run_steps, run_steps_async
from web.heartbeat.pending import Pending, fail
from web.heartbeat.sql import Backend, Postgres, Sqlite

NONCE_PRUNE_EVERY_S = 10.0
"""How often (per process) nonces too old to matter are deleted, inside a batch's transaction."""


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
        self._backend: Backend = Postgres() if db.dialect == "postgresql" else Sqlite()
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
            fail(batch, DatabaseError("the server failed while storing the heartbeat"))
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
            assert conn is not None  # None only once a pooled connection is closed or detached
            if isinstance(self._backend, Sqlite):
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
            db_failure(batch, err)
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
        self._backend = Postgres()
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
                    db_failure(batch, err)
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
            db_failure(batch, err)
            return
        self.stats.add(batch)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
