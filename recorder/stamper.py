"""Time from outside the station while a session records: RFC 3161 tokens over chain heads.

After each sealed segment the recorder offers the segment's record (its exact bytes; its chain
value commits to every segment before it). At most once every `every_s`, the stamper asks the
time-stamping authority for a token over the latest record offered and hands it back to be
written to the outbox as `seg/NNNNNNNN.tsr` (verifier rule V19). It runs in its own thread:
a TSA that is slow or away never holds up sealing. While the TSA is away it keeps only the
latest record offered and tries again; a later head proves the earlier ones too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from evidence.formats import head_token_name

log = logging.getLogger(__name__)

RETRY_S = 30.0  # after a failed request, at the latest this long before the next try


class HeadStamper:
    def __init__(self, url: str, every_s: float, store: Callable[[str, str, bytes], None]) -> None:
        """`store(session id, object name, token)` writes and queues a token (called in the stamper's thread)."""
        self.url = url
        self.every_s = every_s
        self.store = store
        self.error: str | None = None  # why the last request failed; None after a success
        self.stamped = 0
        self._cv = threading.Condition()
        self._latest: tuple[str, str, int, bytes] | None = None
        self._due = 0.0  # monotonic time of the next request: the session's first sealed record goes at once
        self._thread: threading.Thread | None = None
        self._busy = False  # a request (or the keeping of its token) is under way

    @property
    def enabled(self) -> bool:
        return bool(self.url) and self.every_s > 0

    def offer(self, session_id: str, prefix: str, index: int, record: bytes) -> None:
        """The latest sealed record of a session; replaces one offered before and not yet stamped."""
        if not self.enabled:
            return
        with self._cv:
            self._latest = (session_id, prefix, index, record)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="irms-head-stamper", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _next(self) -> tuple[str, str, int, bytes]:
        with self._cv:
            while self._latest is None or time.monotonic() < self._due:
                self._cv.wait(None if self._latest is None else max(0.01, self._due - time.monotonic()))
            item, self._latest = self._latest, None
            self._busy = True
            return item

    def _done(self, due_in_s: float) -> None:
        with self._cv:
            self._busy = False
            self._due = time.monotonic() + due_in_s
            self._cv.notify_all()

    def settle(self, timeout_s: float) -> None:
        """Wait (bounded) for a request under way to end, so its token is queued before the outbox drains."""
        end = time.monotonic() + timeout_s
        with self._cv:
            while self._busy and time.monotonic() < end:
                self._cv.wait(end - time.monotonic())

    def _run(self) -> None:
        # The RFC 3161 client only in a station that stamps (this thread): every start of the agent
        # would otherwise load it and its ASN.1 modules (~10 ms of CPU).
        from verifier.timestamp import TimestampUnavailable, request_token

        while True:
            sid, prefix, index, record = self._next()
            try:
                token = request_token(self.url, record)
            except TimestampUnavailable as err:
                if self.error is None:
                    log.warning("session %s: chain heads wait for a time-stamp token: %s", sid, err)
                self.error = str(err)
                with self._cv:
                    if self._latest is None:  # nothing newer offered: try this head again
                        self._latest = (sid, prefix, index, record)
                self._done(min(self.every_s, RETRY_S))
                continue
            try:
                self.store(sid, head_token_name(prefix, index), token)
            except Exception:  # noqa: BLE001 - a token that cannot be kept must not stop the stamper
                log.exception("session %s: the time-stamp token over segment %d could not be kept", sid, index)
                self._done(0.0)
                continue
            self.error = None
            self.stamped += 1
            self._done(self.every_s)
