"""Session events to the server: queued on the station first, sent in order when the server answers.

`EventSender.sink` is what `Recorder.event_sink` calls for every session event (start, pause,
resume, device_lost, health, capture_stop, end, ...). The event goes into a local queue
(SQLite, IRMS_HOME/events.db, the heartbeat queue's format) before anything else, so a
server that is away delays events but loses none; a background thread sends the queue
oldest first, in signed batches (`POST /api/v1/sessions/events`, format irms.session-events/1),
and removes events only once the server has accepted them. The start event carries the
signed session header, so the server learns the case metadata as the session begins.

While a session records (`watching` set), the sender also asks the server every `poll_s` with an
empty batch when it had nothing to send: the answer's `watchers` member names who watches the
station's sessions live (web/live.py), handed to `on_watchers`. The screen shows them and the
recorder writes their coming and going as `witness_start`/`witness_stop` events. A server that
is away only leaves the last answer standing; capture and upload never wait on it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evidence.protocol import EVENTS_FORMAT, EVENTS_PATH
from recorder.clock import Clock
from recorder.errors import RecorderError
from recorder.heartbeat import HeartbeatQueue, ServerLink, ServerRefused, ServerUnavailable, encode
from recorder.journal import Journal

log = logging.getLogger(__name__)

BATCH = 100
HeaderOf = Callable[[str], dict[str, Any] | None]
Watchers = dict[str, dict[str, str]]
"""Per session id: live view id -> "name, unit", as the server's answer named them."""


def watchers_of(answer: object) -> Watchers:
    """The `watchers` member of an events answer (pure); anything malformed counts as nobody."""
    out: Watchers = {}
    found = answer.get("watchers") if isinstance(answer, dict) else None
    if not isinstance(found, dict):
        return out
    for sid, views in found.items():
        if not isinstance(views, list):
            continue
        out[str(sid)] = {str(v.get("id")): f"{str(v.get('name', ''))[:200]}, {str(v.get('unit', ''))[:200]}".strip(", ")
                         for v in views if isinstance(v, dict) and v.get("id") is not None}
    return out


def event_item(session_id: str, site: str, room: str, event: dict[str, Any],
               header: dict[str, Any] | None) -> dict[str, Any]:
    """One queued event (pure): the recorder's event plus where it happened."""
    item: dict[str, Any] = {"session_id": session_id, "site": site, "room": room, "at_us": int(event["at_us"]),
                            "kind": str(event["kind"]), "detail": str(event.get("detail", ""))}
    if header is not None:
        item["header"] = header
    return item


def batch_body(station_id: str, sent_at_us: int, rows: list[tuple[int, bytes]]) -> bytes:
    """The request body for queued rows (pure): each event numbered by its queue position."""
    events = [{**json.loads(body), "seq": seq} for seq, body in rows]
    return encode({"format": EVENTS_FORMAT, "station_id": station_id, "sent_at_us": sent_at_us,
                   "events": events})


class EventSender:
    """Queue-and-send of session events for one station (thread-safe; one sender thread)."""

    def __init__(self, queue_path: Path, link: ServerLink, clock: Clock, *, site: str, room: str,
                 header_of: HeaderOf | None = None, max_backoff_s: float = 60.0) -> None:
        self.queue_path = queue_path
        self.link = link
        self.clock = clock
        self.site = site
        self.room = room
        self.header_of = header_of
        self.max_backoff_s = max_backoff_s
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.poll_s = 2.0
        self.watching: str | None = None  # the session being recorded: ask who watches it
        self.on_watchers: Callable[[Watchers], None] | None = None
        self._last_post = 0.0
        HeartbeatQueue(queue_path).close()  # create it now: a bad path fails at start, not mid-session

    def sink(self, session_id: str, event: dict[str, Any]) -> None:
        """Recorder.event_sink: queue durably, then wake the sender."""
        header = self.header_of(session_id) if self.header_of and event.get("kind") == "start" else None
        body = encode(event_item(session_id, self.site, self.room, event, header))
        q = HeartbeatQueue(self.queue_path)
        try:
            q.push(body, self.clock.now_us())
        finally:
            q.close()
        self._kick.set()

    def pending(self) -> int:
        q = HeartbeatQueue(self.queue_path)
        try:
            return len(q)
        finally:
            q.close()

    def flush(self) -> int:
        """Send everything queued, oldest first; returns how many are still queued.

        Raises ServerUnavailable when the server is away. A batch refused as malformed (400/413/422)
        is dropped, logged, so it cannot block the queue; 401/403 (unknown, revoked) raise.
        """
        with self._lock:
            q = HeartbeatQueue(self.queue_path)
            try:
                while True:
                    rows = q.oldest(BATCH)
                    if not rows:
                        if self.watching and time.monotonic() - self._last_post >= self.poll_s:
                            self._post(batch_body(self.link.station_id, self.clock.now_us(), []))
                        return 0
                    body = batch_body(self.link.station_id, self.clock.now_us(), rows)
                    try:
                        self._post(body)
                    except ServerRefused as err:
                        if err.status not in (400, 413, 422):
                            raise
                        log.warning("session events %d..%d dropped: %s", rows[0][0], rows[-1][0], err)
                    for seq, _ in rows:
                        q.remove(seq)
            finally:
                q.close()

    def _post(self, body: bytes) -> None:
        answer = self.link.post(EVENTS_PATH, body)
        self._last_post = time.monotonic()
        if self.on_watchers is not None:
            try:
                self.on_watchers(watchers_of(answer))
            except Exception:  # noqa: BLE001 - whoever listens must never stop the events
                log.exception("the watchers callback failed")

    def start(self) -> None:
        """Run the sender thread: it sends at once, on every new event, and retries with back-off."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="irms-events", daemon=True)
            self._thread.start()
            self._kick.set()

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            self._kick.wait(backoff if backoff < self.max_backoff_s else self.max_backoff_s)
            self._kick.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
                backoff = 1.0
            except ServerUnavailable as err:
                log.info("server away, session events queued: %s", err)
                backoff = min(backoff * 2, self.max_backoff_s)
            except ServerRefused as err:
                log.warning("server refuses session events: %s", err)
                backoff = self.max_backoff_s

    def close(self, timeout_s: float = 5.0) -> int:
        """Stop the thread after one last attempt; returns how many events stay queued for later."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        try:
            return self.flush()
        except (ServerUnavailable, ServerRefused) as err:
            log.info("session events stay queued: %s", err)
            return self.pending()


def attach_event_sender(recorder: Any, server_url: str, *, site: str, room: str) -> EventSender | None:
    """Wire a Recorder's event sink to the server this station is enrolled with (if any) and start sending.

    The server is `server_url` (station.toml) or the one in station.json from enrollment; without an
    enrolled station id nothing is sent (events still go into the signed manifest).
    """
    from recorder.heartbeat import read_station_file

    home: Path = recorder.station.home
    data = read_station_file(home)
    server = server_url or str(data.get("server") or "")
    station_id = str(data.get("station_id") or "")
    if not server or not station_id or not data.get("enrolled"):
        return None
    link = ServerLink(server, station_id, recorder.station.key, recorder.clock)

    journal_path = home / "journal.db"

    def header_of(session_id: str) -> dict[str, Any] | None:
        # The sender outlives the recorder it was first attached to (the screen makes one per session):
        # it reads the station's journal on a connection of its own, never a recorder's.
        journal = Journal(journal_path)
        try:
            doc = json.loads(journal.session(session_id).header)
        except (RecorderError, ValueError):
            return None
        finally:
            journal.close()
        return doc if isinstance(doc, dict) else None

    sender = EventSender(home / "events.db", link, recorder.clock, site=site, room=room, header_of=header_of)
    recorder.event_sink = sender.sink
    sender.start()
    return sender
