"""A recording session on the station: start, capture runs, seal, close, recover.

A session is one or more *runs*: a run is one ffmpeg process. A new run starts
after a pause, after a device is lost and comes back, or after the agent itself
crashed and was restarted. Every segment of every run gets the next index of the
one hash chain of the session; the time between runs is an interruption with its
cause. Each agent process that records a session holds one data key for it: key 0
(wrapped in the header) for the process that started it, and a new key, published
as a key object, for a process that resumes it after a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from evidence.canonical import canonical_json, parse_json_object
from evidence.chain import chain_genesis
from evidence.crypto import new_data_key, wrap_key
from evidence.durable import fsync_dir, fsync_file, write_durable
from evidence.errors import FormatError, SignatureError
from evidence.formats import (
    TOKEN_SUFFIX,
    CaseInfo,
    build_header,
    build_key_object,
    build_manifest,
    header_name,
    key_name,
    locator_name,
    manifest_name,
    record_name,
    segment_name,
    session_prefix,
    token_name,
)
from evidence.keys import sign_document, verify_document
from recorder.capture import CaptureLoop
from recorder.clock import Clock, SessionClock
from recorder.config import MARKER_MAX
from recorder.crashpoint import crash_point
from recorder.errors import CaptureError, PreflightRefused, RecorderError, disk_full
from recorder.health import HealthMonitor
from recorder.journal import Journal, Queued, RunRow, SessionRow
from recorder.origin import RunOrigin
from recorder.profile import Profile
from recorder.rebuild import Rebuilder, journal_behind, journal_damage, move_aside
from recorder.sealer import seal
from recorder.segmenter import (
    CAMERA_CLOCK,
    CAMERA_CLOCK_LEAD_S,
    GENERATED,
    SEGMENT_LIST,
    build_argv,
    camera_script_names,
    camera_scripts,
    decode_error,
    first_media_us,
    parse_segment_list,
    probe_duration_us,
    timing,
)
from recorder.stamper import HeadStamper
from recorder.station import Station
from recorder.supervisor import ProcessSupervisor
from recorder.uploader import Uploader
from storage.base import ObjectStore
from storage.errors import StoreError

log = logging.getLogger(__name__)
CAMERA_CLOCK_LEAD_US = round(CAMERA_CLOCK_LEAD_S * 1e6)
# Media ending this long before the capture was stopped is declared as an encoder stall (close()).
LAG_DECLARED_US = 1_000_000

# After a full disk, capture resumes once this much is free (or min_free_bytes, if smaller).
RESUME_FREE_BYTES = 64 * 2**20
# A listed segment whose decodable media is this much shorter than the list says is torn
# (the verifier's V15 tolerance).
TORN_TOLERANCE_US = 250_000
# What ffmpeg prints when a write failed: its segments may then be torn.
WRITE_ERRORS = ("No space left", "Disk quota exceeded", "Input/output error", "Error writing")


@dataclass
class RecorderSettings:
    site: str
    room: str
    label: str = ""
    retention_days: int = 0
    min_free_bytes: int = 512 * 1024 * 1024
    watchdog_s: float = 10.0
    restart_backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0)
    drain_timeout_s: float = 300.0
    credentials: dict[str, str] = field(default_factory=dict)
    health_every_s: float = 10.0
    tsa_url: str = ""
    tsa_heads_every_s: float = 60.0


@dataclass
class SessionKey:
    index: int
    data_key: bytes


def locator_bytes(prefix: str, session_id: str) -> bytes:
    """The unsigned locator object that finds a session's prefix by its id."""
    return canonical_json({"format": "irms.locator/1", "prefix": prefix, "session_id": session_id})


class Recorder:
    """Records sessions for one station into one store."""

    def __init__(self, station: Station, store: ObjectStore, profile: Profile, clock: Clock,
                 settings: RecorderSettings) -> None:
        self.station = station
        self.store = store
        self.profile = profile
        # Everything the recorder stamps is session time: durations and the planned end survive wall-clock steps.
        self.clock = clock if isinstance(clock, SessionClock) else SessionClock(clock)
        self.settings = settings
        station.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        station.outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(station.spool, 0o700)
        damage = journal_damage(station.journal_path)
        kept = move_aside(station.journal_path, station.home, clock.now_us()) if damage else None
        self.journal = Journal(station.journal_path)
        self.uploader = Uploader(station.journal_path, store, clock, retention_days=settings.retention_days)
        self.keys: dict[str, SessionKey] = {}
        self.stop_requested = threading.Event()
        self.pause_reason: str | None = None
        self.resume_reason = ""
        self.pause_requested = threading.Event()
        self.resume_requested = threading.Event()
        # Events asked for from other threads (the screen's marker key, the server's viewers): written by the
        # recording thread (poll, pause loop, close), stamped with the time they were asked for.
        self._notes: list[tuple[int, str, str]] = []
        self._notes_lock = threading.Lock()
        self._watchers: dict[str, str] = {}
        self.clock_offset_us = 0
        # Where the latest measured offset comes from (server time − station time, µs), e.g. the server link.
        self.clock_offset_source: Callable[[], int | None] | None = None
        # Why the last request for a manifest's time-stamp token failed (None: none is waiting).
        self.timestamp_error: str | None = None
        # Tokens over chain heads while recording (V19), asked for in their own thread.
        self.head_stamper = HeadStamper(settings.tsa_url, settings.tsa_heads_every_s, self._keep_head_token)
        self._stamper_journal: Journal | None = None
        # What ffmpeg last said when a session ends as device_failure.
        self.capture_failure = ""
        # The error that showed the disk full, while it is (becomes the store_full interruption's reason).
        self._full_error = ""
        self._list_sizes: dict[str, int] = {}
        self._with_media: set[str] = set()  # sessions known to have a captured segment
        self._origins: dict[str, RunOrigin] = {}  # a camera-timed run's dir -> its origin, learned as it runs
        self._timings: dict[str, str] = {}  # session -> how its runs are timed
        # Called with (session id, event) for every session event, e.g. to queue it for the server.
        self.event_sink: Callable[[str, dict[str, Any]], None] | None = None
        cam = profile.cameras[0]
        self.health = HealthMonitor(None if cam.passthrough else (cam.width, cam.height),
                                    has_audio=bool(profile.microphones), every_s=settings.health_every_s)
        # Runs, the watchdog, restarts with back-off and the dead-device rule live in the capture loop.
        self.capture = CaptureLoop(self, self.clock, stop=self.stop_requested, pause=self.pause_requested,
                                   watchdog_s=settings.watchdog_s, restart_backoff_s=settings.restart_backoff_s)
        self._check_journal(damage, kept)

    # --- a damaged journal --------------------------------------------------

    def _check_journal(self, damage: str | None, kept: Path | None) -> None:
        """Rebuild a damaged journal, or one behind what the outbox and store hold (issue 10, fault 7)."""
        if damage is None:
            damage = journal_behind(self.journal, self.station.outbox, self.station.spool, self.store)
            if damage is None:
                return
            self.journal.close()
            kept = move_aside(self.station.journal_path, self.station.home, self.clock.now_us())
            self.journal = Journal(self.station.journal_path)
        note = f"journal damaged ({damage}); kept in {kept}; rebuilt from the outbox and the store"
        log.error("%s", note)
        rebuilder = Rebuilder(self.journal, self.station.outbox, self.station.spool, self.store,
                              self.station.key.public_key())
        for sid in rebuilder.session_ids():
            found = rebuilder.gather(sid)
            left_open = found is not None and rebuilder.write(found, self.clock.now_us(), note)
            self._keep_spool(sid)
            # What cannot be rebuilt is kept out of the outbox, so that the next start does not rebuild again.
            left = found.left if found is not None else sorted(p for p in (self.station.outbox / sid).glob("*")
                                                                if p.is_file() and not p.name.startswith("."))
            for path in left:
                kept_path = self._inspect_path(sid, f"outbox-{path.name}")
                kept_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.replace(path, kept_path)
                fsync_dir(kept_path.parent)
                if left_open:
                    self._event(sid, self.clock.now_us(), "object_kept",
                                f"{path.name} does not fit the rebuilt chain; kept unqueued in {kept_path}")
            if left_open:
                self.close(sid, "recovered_after_crash")
                log.warning("session %s closed after the journal was rebuilt", sid)

    def _inspect_path(self, sid: str, name: str) -> Path:
        """Where a file that cannot be sealed or queued is kept for inspection: IRMS_HOME/inspect/<session>/."""
        return self.station.home / "inspect" / sid / name

    def _keep_spool(self, sid: str) -> None:
        """Move a session's plain files out of the spool into IRMS_HOME/inspect (declared if the session is open)."""
        spool = self.station.spool / sid
        try:
            still_open = self.journal.session(sid).state != "closed"
        except RecorderError:
            still_open = False
        for path in sorted(spool.rglob("*.ts")):
            kept = self._inspect_path(sid, str(path.relative_to(spool)).replace("/", "-"))
            kept.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(path, kept)
            fsync_dir(kept.parent)
            log.warning("session %s: plain file %s kept unsealed in %s", sid, path.name, kept)
            if still_open:
                self._event(sid, self.clock.now_us(), "partial_kept",
                            f"{path.relative_to(spool)} kept unsealed in {kept}")
        shutil.rmtree(spool, ignore_errors=True)

    # --- events -------------------------------------------------------------

    def _event(self, sid: str, at_us: int, kind: str, detail: str = "") -> None:
        """Journal a session event (it goes into the manifest) and hand it to the event sink."""
        self.journal.add_event(sid, at_us, kind, detail)
        self._sink(sid, at_us, kind, detail)

    def _sink(self, sid: str, at_us: int, kind: str, detail: str) -> None:
        """Hand an event the journal already holds to the event sink."""
        if self.event_sink is not None:
            try:
                self.event_sink(sid, {"at_us": at_us, "kind": kind, "detail": detail})
            except Exception:  # noqa: BLE001 - a sink failure must never stop a recording
                log.exception("event sink failed for %s %s", sid, kind)

    def mark(self, label: str = "") -> int:
        """Drop a marker now (the investigator's key or button): a `marker` event in the manifest. Thread-safe."""
        label = " ".join(label.split())
        if len(label) > MARKER_MAX:
            raise RecorderError(f"a marker label has at most {MARKER_MAX} characters, not {len(label)}")
        at = self.clock.now_us()
        with self._notes_lock:
            self._notes.append((at, "marker", label))
        return at

    def watched_by(self, viewers: dict[str, str]) -> None:
        """The server's current live viewers of the session (view id -> "name, unit"): each one who came is a
        `witness_start` event, each one who left a `witness_stop`. Thread-safe."""
        at = self.clock.now_us()
        with self._notes_lock:
            for vid in sorted(viewers.keys() - self._watchers.keys()):
                self._notes.append((at, "witness_start", f"{vid} {viewers[vid]}"))
            for vid in sorted(self._watchers.keys() - viewers.keys()):
                self._notes.append((at, "witness_stop", f"{vid} {self._watchers[vid]}"))
            self._watchers = dict(viewers)

    def _write_notes(self, sid: str) -> None:
        """Journal the events other threads asked for (in the recording thread, which owns the journal)."""
        with self._notes_lock:
            notes, self._notes = self._notes, []
        for at, kind, detail in notes:
            self._event(sid, at, kind, detail)

    # --- outbox -------------------------------------------------------------

    def _outbox_write(self, session_id: str, name: str, data: bytes) -> Queued:
        """Write an object durably into the outbox; the caller queues it in its own journal transaction.

        A file written here but never queued (a crash before the transaction) is never uploaded;
        the restart writes the object again under the same name.
        """
        path = self.station.outbox / session_id / name.replace("/", "__")
        write_durable(path, data, mode=0o600, replace=True)
        return Queued(name, str(path), hashlib.sha256(data).hexdigest())

    # --- start --------------------------------------------------------------

    def preflight(self) -> None:
        """Refuse a new session when evidence could not be kept (R01, R10)."""
        free = shutil.disk_usage(self.station.home).free
        if free < self.settings.min_free_bytes:
            raise PreflightRefused(
                f"only {free // 2**20} MiB free on {self.station.home}, need "
                f"{self.settings.min_free_bytes // 2**20} MiB: new session refused, recorded evidence kept"
            )
        if not shutil.which("ffmpeg"):
            raise PreflightRefused("ffmpeg is not installed on this station")

    def start(self, case: CaseInfo, seconds: float | None) -> str:
        self.preflight()
        self.clock.anchor()
        sid = str(uuid.uuid4())
        now = self.clock.now_us()
        data_key = new_data_key()
        wrapped = wrap_key(data_key, self.station.custodian, sid, 0)
        header = sign_document(build_header(
            session_id=sid, station_id=self.station.station_id, station_key_b64=self.station.public_b64,
            site=self.settings.site, room=self.settings.room, case=case,
            kit={"profile": self.profile.name, "devices": self.profile.devices_json()},
            started_at_us=now, segment_target_us=self.profile.segment.seconds * 1_000_000,
            wrapped_key=wrapped,
        ), self.station.key)
        prefix = session_prefix(self.settings.site, self.settings.room, sid)
        header_bytes = canonical_json(header)
        planned = now + int(seconds * 1_000_000) if seconds else None
        # The header and locator are durable in the outbox before the journal knows the session;
        # the session row and their queue entries are then one transaction (issue 10, fault 2).
        objects = [self._outbox_write(sid, header_name(prefix), header_bytes),
                   self._outbox_write(sid, locator_name(sid), locator_bytes(prefix, sid))]
        crash_point("start.outbox_written")
        self.journal.add_session_queued(SessionRow(sid, prefix, header_bytes.decode(), "recording", now, planned, 0,
                                                   chain_genesis(header), 1), (now, "start", ""), objects)
        crash_point("start.committed")
        self._sink(sid, now, "start", "")
        self.uploader.kick()
        self.keys[sid] = SessionKey(0, data_key)
        log.info("session %s started in %s/%s", sid, self.settings.site, self.settings.room)
        return sid

    # --- capture ------------------------------------------------------------

    def _new_run(self, sid: str) -> tuple[RunRow, ProcessSupervisor]:
        """Journal a new run and start its ffmpeg."""
        row, sup = self.prepare_run(sid)
        self.capture.start(sup)
        return row, sup

    def prepare_run(self, sid: str) -> tuple[RunRow, ProcessSupervisor]:
        """Journal a new run and give its ffmpeg's supervisor, not yet started (the capture loop starts it)."""
        runs = self.journal.runs(sid)
        n = runs[-1].run + 1 if runs else 0
        run_dir = self.station.spool / sid / f"run{n:03d}"
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = self.clock.now_us()
        # Live devices are stamped with the wall clock: the run's origin is a whole second, known now.
        # A camera-timed run keeps the camera's clock: its origin is learned from its first sound.
        clock = timing(self.profile.devices_json())
        t0 = now // 1_000_000 if clock != GENERATED else None
        own_clock = clock == CAMERA_CLOCK
        row = RunRow(sid, n, str(run_dir), now, t0 * 1_000_000 if t0 is not None and not own_clock else None, None)
        self.journal.add_run(row)
        argv = build_argv(self.profile, run_dir, self.settings.label or f"{self.settings.site}/{self.settings.room}",
                          self.settings.credentials, t0=t0)
        watch = None
        if own_clock:
            origin = self._origins[str(run_dir)] = RunOrigin(self.clock.now_us, self.profile.cameras[0].latency_ms)
            watch = origin.feed
        env = {**os.environ, "TZ": self.profile.overlay.timezone}
        sup = ProcessSupervisor(f"ffmpeg-{sid[:8]}-run{n}", argv, cwd=run_dir, env=env,
                                log_path=self.station.home / "logs" / "ffmpeg.log",
                                secrets=[self.settings.credentials.get("password", "")],
                                files=camera_scripts(self.profile, run_dir, self.settings.credentials),
                                shown_as=camera_script_names(self.profile, run_dir, self.settings.credentials),
                                watch=watch)
        (self.station.home / "logs").mkdir(exist_ok=True)
        return row, sup

    def _key(self, sid: str) -> SessionKey:
        if sid not in self.keys:
            # This process did not start the session: a new key for what it seals (after a crash).
            # The key object is durable in the outbox before the journal counts the key; counting
            # it and queueing the object are one transaction (issue 10, fault 1).
            now = self.clock.now_us()
            s = self.journal.session(sid)
            idx = s.key_count
            data_key = new_data_key()
            obj = sign_document(build_key_object(
                session_id=sid, key_index=idx, created_at_us=now, cause="resume_after_crash",
                wrapped_key=wrap_key(data_key, self.station.custodian, sid, idx),
            ), self.station.key)
            queued = self._outbox_write(sid, key_name(s.prefix, idx), canonical_json(obj))
            crash_point("key.outbox_written")
            self.journal.add_key(sid, idx, queued)
            crash_point("key.committed")
            self.uploader.kick()
            self.keys[sid] = SessionKey(idx, data_key)
        return self.keys[sid]

    def _seal_captured(self, sid: str, keep: Path | None = None, kept: set[Path] | None = None) -> int:
        """Seal every captured segment of the session, in index order. The plain file `keep` (a segment
        whose health is judged after it is sealed) is left for the caller, and added to `kept` once sealed."""
        sealed = 0
        for seg in self.journal.segments(sid, "captured"):
            s = self.journal.session(sid)
            if seg.idx != s.next_index:
                raise RecorderError(f"journal out of order: segment {seg.idx} but chain expects {s.next_index}")
            plain_path = Path(self.journal.runs(sid)[seg.run].dir) / seg.file
            try:
                plain = plain_path.read_bytes()
            except FileNotFoundError:
                # The journal said "captured" but a power cut took the file: a declared loss.
                self._declare_lost(sid, seg.idx, plain_path)
                return sealed + self._seal_captured(sid, keep, kept)
            key = self._key(sid)
            if self.clock_offset_source is not None:
                measured = self.clock_offset_source()
                if measured is not None:
                    # Records hold station − reference (R18), station time being session time.
                    self.clock_offset_us = -measured - self.clock.stepped_us
            out = seal(plain=plain, session_id=sid, index=seg.idx, key_index=key.index, run=seg.run,
                       data_key=key.data_key, station_key=self.station.key, prev_chain=s.chain_head,
                       start_us=seg.start_us, duration_us=seg.duration_us,
                       clock_offset_us=self.clock_offset_us, salvaged=seg.salvaged)
            rec_bytes = canonical_json(out.record)
            objects = [self._outbox_write(sid, segment_name(s.prefix, seg.idx), out.cipher),
                       self._outbox_write(sid, record_name(s.prefix, seg.idx), rec_bytes)]
            crash_point("seal.outbox_written")
            self.journal.mark_sealed(sid, seg.idx, rec_bytes.decode(), out.record["chain"], objects)
            crash_point("seal.committed")
            if plain_path == keep and kept is not None:
                kept.add(plain_path)
            else:
                plain_path.unlink(missing_ok=True)
            sealed += 1
            log.debug("session %s: segment %d sealed at %d", sid, seg.idx, self.clock.now_us())
            self.head_stamper.offer(sid, s.prefix, seg.idx, rec_bytes)
        if sealed:
            self.uploader.kick()
        return sealed

    def _declare_lost(self, sid: str, idx: int, plain_path: Path) -> None:
        reason = f"plain segment {plain_path} was gone before it was sealed (power cut?)"
        log.error("session %s: %s; declared as an interruption", sid, reason)
        self.journal.drop_lost(sid, idx, "power", reason, self.clock.now_us())

    def _collect(self, sid: str, run: RunRow, final: bool) -> int:
        """Capture what ffmpeg has finished in a run (and, when final, salvage the rest)."""
        run_dir = Path(run.dir)
        if not final:
            # Most polls find nothing new: look at the segment list's size before anything else.
            try:
                size = (run_dir / SEGMENT_LIST).stat().st_size
            except FileNotFoundError:
                return 0
            if self._list_sizes.get(run.dir) == size:
                return 0
            self._list_sizes[run.dir] = size
        clock = self._timing(sid)
        t0 = run.t0_us
        if t0 is None:  # only when final: a poll captures nothing before the run's origin is known
            t0 = self._run_t0(sid, run, final=True)
            self.journal.set_run_t0(sid, run.run, t0)
        if final:
            self._origins.pop(run.dir, None)
        known = self.journal.known_files(sid, run.run)
        listed = []
        with contextlib.suppress(FileNotFoundError):
            listed = parse_segment_list((run_dir / SEGMENT_LIST).read_text())
        count = 0
        last_end = 0
        synced_dir = False
        judge: tuple[Path, int, int, int] | None = None  # a segment whose health is due: judged once sealed
        for seg in listed:
            last_end = max(last_end, seg.end_us)
            if seg.file in known:
                continue
            path = run_dir / seg.file
            if not path.exists():
                continue
            fsync_file(path)
            if not synced_dir:
                # The file's directory entry must survive a power cut before the journal says "captured".
                fsync_dir(run_dir)
                synced_dir = True
            start = seg.start_us
            if seg.start_us == 0:
                start = min(self._first_media(path, clock, run, t0), seg.end_us)
            torn = self._torn(path, seg.end_us - start)
            if torn:
                self._keep_torn(sid, run, path, torn)
                continue
            late = self._late_start(sid, t0 + start)
            idx = self.journal.capture(sid, run.run, seg.file, t0 + start, seg.end_us - start, if_first=late)
            if idx is not None:
                log.debug("session %s: segment %d captured at %d", sid, idx, self.clock.now_us())
                count += 1
                if idx == 0 and late is not None:
                    log.warning("session %s: %s", sid, late[3])
                self._on_media(sid, t0 + start)
                now = self.clock.now_us()
                if judge is None and self.health.due(now):
                    judge = (path, t0 + start, seg.end_us - start, now)
        if final:
            listed_names = {s.file for s in listed}
            for path in sorted(run_dir.glob("seg*.ts")):
                if path.name in listed_names or path.name in known:
                    continue
                duration = probe_duration_us(path)
                if duration <= 0:
                    log.warning("segment %s holds no decodable media; kept for inspection", path)
                    continue
                torn = self._torn(path, None)
                if torn:
                    self._keep_torn(sid, run, path, torn)
                    continue
                fsync_file(path)
                fsync_dir(run_dir)
                at = last_end or self._first_media(path, clock, run, t0)  # nothing listed: the run's first
                if self.journal.capture(sid, run.run, path.name, t0 + at, duration, salvaged=True) is not None:
                    count += 1
                    self._event(sid, self.clock.now_us(), "salvaged", path.name)
                    self._on_media(sid, t0 + at)
                    last_end = at + duration
        if count:
            # Seal (and so upload) first: a live viewer waits for the segment, not for its health judgement.
            kept: set[Path] = set()
            self._seal_captured(sid, judge[0] if judge else None, kept)
            if judge is not None:
                path, at, duration, now = judge
                try:
                    for kind, detail in self.health.check(path, now, duration):
                        log.warning("session %s: %s %s", sid, kind, detail)
                        self._event(sid, at, kind, detail)
                finally:
                    if path in kept:
                        path.unlink(missing_ok=True)
        return count

    def _check_clock(self, sid: str) -> None:
        """A wall-clock step while recording becomes a `clock_step` event; session time goes on unmoved."""
        step = self.clock.wall_step_us()
        if step:
            detail = f"wall clock stepped {step / 1e6:+.3f} s"
            log.warning("session %s: %s; session time follows the monotonic clock", sid, detail)
            self._event(sid, self.clock.now_us(), "clock_step", detail)

    def flag_clock(self, sid: str, detail: str) -> None:
        """The station clock was off the reference beyond tolerance at the start: a `clock_offset` event."""
        self._event(sid, self.clock.now_us(), "clock_offset", detail)

    def _last_time(self, sid: str) -> int:
        """The latest time the journal holds for a session (session time of the process that wrote it)."""
        s = self.journal.session(sid)
        times = [s.started_at_us, self._media_end(sid) or 0]
        times += [e["at_us"] for e in self.journal.events(sid)]
        times += [t for r in self.journal.runs(sid) for t in (r.launched_us, r.ended_us) if t is not None]
        times += [i["start_us"] for i in self.journal.interruptions(sid)]
        return max(times)

    def _torn(self, path: Path, listed_us: int | None) -> str:
        """Why a segment is not whole (a full disk cut it or left a hole in it), or "" if it is.

        An empty file is torn. While writes may have failed (the disk is or was full in this run,
        free space is below the resume threshold, or ffmpeg reported a write error), a listed
        segment's decodable length is compared with the list's and every segment is decoded fully,
        as the verifier's V15 will; a salvaged partial (`listed_us` None) is always decoded. Doing
        this for every segment would cost a fifth of a core, so it is kept to those windows.
        """
        try:
            if path.stat().st_size == 0:
                return "0 bytes"
            if listed_us is not None and not self._writes_at_risk():
                return ""
            if listed_us is not None:
                decodable = probe_duration_us(path)
                if decodable < listed_us - TORN_TOLERANCE_US:
                    return f"{decodable / 1e6:.3f} s decodable of {listed_us / 1e6:.3f} s listed"
            error = decode_error(path)
            if error:
                return f"does not decode: {error}"
        except CaptureError as err:
            # ffprobe could not judge it in time (a loaded station): the list is all there is to go on.
            log.warning("%s; trusting the segment list", err)
        return ""

    def _writes_at_risk(self) -> bool:
        if self._full_error or shutil.disk_usage(self.station.home).free < self._resume_free_bytes():
            return True
        run = self.capture.supervisor
        return run is not None and any(w in line for line in run.stderr_tail for w in WRITE_ERRORS)

    def _keep_torn(self, sid: str, run: RunRow, path: Path, why: str) -> None:
        """A torn segment is never sealed: it is moved aside for inspection and its time becomes a gap."""
        dest_dir = self.station.home / "inspect" / sid
        dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest = dest_dir / f"run{run.run:03d}-{path.name}"
        os.replace(path, dest)
        log.warning("session %s: segment %s is torn (%s); kept in %s, not sealed", sid, path, why, dest)
        now = self.clock.now_us()
        if not any(i["end_us"] is None for i in self.journal.interruptions(sid)):
            low = shutil.disk_usage(self.station.home).free < self._resume_free_bytes()
            cause = "store_full" if low or self._full_error else "encoder_stall"
            self.journal.open_interruption(sid, self._media_end(sid) or self.journal.session(sid).started_at_us,
                                           cause, f"segment torn ({why})")
        self._event(sid, now, "torn_segment", f"{dest.name} {why}")

    def _resume_free_bytes(self) -> int:
        return min(self.settings.min_free_bytes, RESUME_FREE_BYTES)

    def wait_for_space(self, sid: str, run: RunRow | None, until_us: int | None) -> str | None:
        """The disk is full: wait until space returns, end the run, declare the gap as `store_full`.

        Nothing can be journaled while the disk is full, so the run is ended and the interruption
        opened (from the end of the media) once there is room again; capture then resumes by itself.
        Returns the session's end reason if it ended meanwhile (stop, planned end), else None.
        """
        ending: str | None = None
        while True:
            if self.stop_requested.is_set():
                ending = "stopped"
            elif until_us is not None and self.clock.now_us() >= until_us:
                ending = "duration_reached"
            if ending or shutil.disk_usage(self.station.home).free >= self._resume_free_bytes():
                try:
                    if run is not None:
                        self.end_run(sid, run, "store_full")
                    if not any(i["end_us"] is None for i in self.journal.interruptions(sid)):
                        start = self._media_end(sid) or self.journal.session(sid).started_at_us
                        self.journal.open_interruption(sid, start, "store_full", self._full_error[:500])
                    self._event(sid, self.clock.now_us(), "store_full", self._full_error[:500])
                except (OSError, sqlite3.Error) as err:
                    if not disk_full(err):
                        raise
                    if ending:
                        raise RecorderError(
                            f"the station disk {self.station.home} is still full: session {sid} stays open "
                            "and is closed as interrupted when there is room (irms-agent recover)") from None
                else:
                    self._full_error = ""
                    return ending
            self.clock.sleep(0.5)

    def _on_media(self, sid: str, start_us: int) -> None:
        """Media is flowing again: an open interruption ends where it starts."""
        self.journal.close_interruptions(sid, start_us)

    def _media_end(self, sid: str) -> int | None:
        segs = self.journal.segments(sid)
        if not segs:
            return None
        last = segs[-1]
        return last.start_us + last.duration_us

    def record(self, sid: str, until_us: int | None) -> str:
        """Capture runs until `until_us` or a stop request; returns the end reason.

        The capture loop (recorder/capture.py) runs, watches and restarts ffmpeg; this recorder
        answers it with what the session means. `device_failure` when the devices never delivered
        a segment (a dead camera at the start); `capture_failure` then says what ffmpeg last reported.
        """
        self.uploader_started()
        self.capture_failure = ""
        reason = self.capture.run(sid, until_us)
        self.capture_failure = self.capture.failure
        return reason

    # --- what the capture loop asks of the session (recorder.capture.CaptureHost) ---

    def poll_run(self, sid: str, run: RunRow) -> tuple[RunRow, bool]:
        """Check the clock, learn the run's origin from its first segment, capture what it finished."""
        self._check_clock(sid)
        self._write_notes(sid)
        if run.t0_us is None:
            t0 = self._run_t0(sid, run)
            if t0 is not None:
                self.journal.set_run_t0(sid, run.run, t0)
                run = next(r for r in self.journal.runs(sid) if r.run == run.run)
        return run, run.t0_us is not None and self._collect(sid, run, final=False) > 0

    @staticmethod
    def _first_media(path: Path, clock: str, run: RunRow, t0: int) -> int:
        """Where a run's first segment begins, in µs after the run's t0: ffmpeg's list (or, for a segment
        salvaged after a crash, nothing) says 0, which only a generated kit's is.

        A live run's is its first timestamp, which ffprobe usually knows (it may time out on a loaded
        station). On the wall clock, media cannot predate the launch. On a camera's clock it may (the
        camera captured and queued it before ffmpeg connected), but not the lead."""
        if clock == GENERATED:
            return 0
        if clock == CAMERA_CLOCK:
            return first_media_us(path) or CAMERA_CLOCK_LEAD_US
        return max(first_media_us(path) or 0, run.launched_us - t0)

    def _timing(self, sid: str) -> str:
        """How the session's runs are timed (recorder.segmenter.timing), from the kit its header names."""
        if sid not in self._timings:
            header = parse_json_object(self.journal.session(sid).header.encode(), "the session header")
            self._timings[sid] = timing(header["kit"]["devices"])
        return self._timings[sid]

    @overload
    def _run_t0(self, sid: str, run: RunRow, final: Literal[True]) -> int: ...
    @overload
    def _run_t0(self, sid: str, run: RunRow, final: bool = False) -> int | None: ...

    def _run_t0(self, sid: str, run: RunRow, final: bool = False) -> int | None:
        """The origin of a run whose t0 was not known at launch, once it can be known.

        A generated kit: when its first segment appears (ffmpeg's -re clock starts then). A
        camera-timed run: from the arrival of its first sound (recorder.origin). A run that ended
        before that was seen (`final`: after a crash, or one that never got going) takes its launch,
        less the lead on a camera's clock.
        """
        if self._timing(sid) != CAMERA_CLOCK:
            if final:
                return run.launched_us
            return self.clock.now_us() if (Path(run.dir) / "seg000000.ts").exists() else None
        origin = self._origins.get(run.dir)
        t0 = origin.t0_us(final) if origin is not None else None
        if t0 is None and final:
            return run.launched_us - CAMERA_CLOCK_LEAD_US
        return t0

    def capture_stopping(self, sid: str, reason: str) -> None:
        self._event(sid, self.clock.now_us(), "capture_stop", reason)

    def run_failed(self, sid: str, cause: str, detail: str) -> None:
        """The run failed: an interruption from the end of its media until media flows again."""
        start = self._media_end(sid) or self.journal.session(sid).started_at_us
        if not any(i["end_us"] is None for i in self.journal.interruptions(sid)):
            self.journal.open_interruption(sid, start, cause, detail)
            self._event(sid, self.clock.now_us(), cause, detail)

    def has_media(self, sid: str) -> bool:
        return bool(self.journal.segments(sid))

    def disk_filled(self, sid: str, err: BaseException) -> str:
        """A write failed on a full disk: its error becomes the `store_full` interruption's reason."""
        self._full_error = f"no space left on {self.station.home}: {err}"
        return self._full_error

    def pause(self, reason: str) -> None:
        """Ask the recording loop to pause (R04): a reason is required and goes into the manifest.

        The request is a latch the loop always honours: a resume that comes before the loop
        looked still leaves a (short) pause, with both reasons, never a lost one."""
        if not reason.strip():
            raise RecorderError("a pause needs a reason (it is announced and written in the minutes)")
        self.pause_reason = reason.strip()
        self.resume_requested.clear()
        self.pause_requested.set()

    def resume(self, reason: str = "") -> None:
        """Ask the loop to resume; it clears the pause once it has recorded it."""
        self.resume_reason = reason.strip()
        self.resume_requested.set()

    @property
    def paused(self) -> bool:
        """As the investigator sees it: a pause asked for and not yet resumed."""
        return self.pause_requested.is_set() and not self.resume_requested.is_set()

    def wait_paused(self, sid: str) -> bool:
        """Record the pause as an interruption and wait for resume; False if stopped meanwhile."""
        now = self.clock.now_us()
        start = self._media_end(sid) or now
        self.journal.open_interruption(sid, start, "pause", self.pause_reason or "")
        self._event(sid, now, "pause", self.pause_reason or "")
        while not self.resume_requested.is_set():
            if self.stop_requested.is_set():
                return False
            self._check_clock(sid)
            self._write_notes(sid)
            self.clock.sleep(0.05)
        self.pause_requested.clear()
        self.resume_requested.clear()
        self._event(sid, self.clock.now_us(), "resume", self.resume_reason)
        return True

    def end_run(self, sid: str, run: RunRow, cause: str) -> None:
        """The run's ffmpeg is gone: capture and salvage what it left, journal the run's end."""
        run = next(r for r in self.journal.runs(sid) if r.run == run.run)
        self._collect(sid, run, final=True)
        self.journal.end_run(sid, run.run, self.clock.now_us(), cause)

    # --- close --------------------------------------------------------------

    def close(self, sid: str, end_reason: str) -> dict[str, Any]:
        """Seal anything left, write the signed manifest, queue it last.

        The manifest is durable in the outbox first; the end event, the end of open
        interruptions, state "closed" and the manifest's queue entry are then one
        transaction (issue 10, fault 3). A crash before it leaves the session open and the
        manifest file unqueued: the restart seals the session's one manifest again.
        """
        self._seal_captured(sid)
        self._keep_partials(sid)
        self.watched_by({})  # whoever still watches stops with the session
        self._write_notes(sid)
        s = self.journal.session(sid)
        now = self.clock.now_us()
        still_open = any(i["end_us"] is None for i in self.journal.interruptions(sid))
        journaled = self.journal.events(sid)
        media_end = self._media_end(sid)
        stops = [e["at_us"] for e in journaled if e["kind"] == "capture_stop"]
        if end_reason == "recovered_after_crash":
            ended = media_end or now
        elif still_open or not stops:
            ended = now  # ended during a pause or a device loss: the interruption runs to the end
        else:
            ended = stops[-1]
            self._declare_lag(sid, media_end, ended)
        header = parse_json_object(s.header.encode(), "session header")
        interruptions = [
            {"cause": i["cause"], "end_us": now if i["end_us"] is None else i["end_us"], "reason": i["reason"],
             "start_us": i["start_us"]}
            for i in self.journal.interruptions(sid)
        ]
        events = [{"at_us": e["at_us"], "detail": e["detail"], "kind": e["kind"]} for e in journaled]
        events.append({"at_us": now, "detail": end_reason, "kind": "end"})
        manifest = sign_document(build_manifest(
            session_id=sid, header_sha256=chain_genesis(header), segment_count=s.next_index,
            chain_head=s.chain_head, started_at_us=s.started_at_us,
            ended_at_us=ended,
            end_reason=end_reason, key_count=s.key_count, interruptions=interruptions, events=events,
            devices=self.profile.devices_json(),
        ), self.station.key)
        data = canonical_json(manifest)
        queued = self._outbox_write(sid, manifest_name(s.prefix), data)
        crash_point("close.outbox_written")
        self.journal.close_session(sid, now, end_reason, data.decode(), queued)
        crash_point("close.committed")
        self._sink(sid, now, "end", end_reason)
        self.uploader.kick()
        shutil.rmtree(self.station.spool / sid, ignore_errors=True)
        self.stamp_manifests()
        return manifest

    def stamp_manifests(self) -> int:
        """Ask the TSA for a token over every sealed manifest that has none yet, and queue each token.
        A TSA that is away is reported, never waited for: the manifests wait for the next try."""
        if not self.settings.tsa_url:
            return 0
        from verifier.timestamp import TimestampUnavailable, request_token  # only with a TSA configured

        stamped = 0
        for sid, prefix, manifest in self.journal.unstamped_manifests(TOKEN_SUFFIX):
            try:
                token = request_token(self.settings.tsa_url, manifest.encode())
            except TimestampUnavailable as err:
                self.timestamp_error = str(err)
                log.warning("manifest of session %s waits for its time-stamp token: %s", sid, err)
                break
            self.journal.queue(sid, self._outbox_write(sid, token_name(prefix), token))
            self.uploader.kick()
            stamped += 1
        else:
            self.timestamp_error = None
        return stamped

    def _keep_head_token(self, sid: str, name: str, token: bytes) -> None:
        """Write and queue a token over a chain head (in the stamper's thread, on its own journal connection)."""
        if self._stamper_journal is None:
            self._stamper_journal = Journal(self.station.journal_path)
        self._stamper_journal.queue(sid, self._outbox_write(sid, name, token))
        self.uploader.kick()

    def _late_start(self, sid: str, first_us: int) -> tuple[int, int, str, str] | None:
        """If a segment beginning at `first_us` would be the session's first and begins later than the
        session started (an encoder slow to start on an overloaded station, or a camera that answered but
        sent nothing yet): the interruption that declares that time, as `_declare_lag` does at the end,
        instead of leaving it for V17. It is journaled with the first segment, in one transaction: a crash
        between the two would lose it. Later runs need nothing here: the failure that ended the run before
        already opened an interruption."""
        if sid in self._with_media:
            return None
        if self.has_media(sid):
            self._with_media.add(sid)
            return None
        s = self.journal.session(sid)
        late = first_us - s.started_at_us
        if late <= LAG_DECLARED_US or self.journal.interruptions(sid):
            return None
        reason = (f"capture began {late / 1e6:.1f} s after the session started: nothing was produced before "
                  "(an encoder slow to start on an overloaded station, or devices that sent nothing yet)")
        return s.started_at_us, first_us, "encoder_stall", reason

    def _declare_lag(self, sid: str, media_end: int | None, stopped_at: int) -> None:
        """Capture was stopped at `stopped_at` but its media ends earlier: the encoder ran slower than
        real time (an overloaded station, generated inputs that follow the encoder's pace), so that
        time was never recorded. Declare it, as any other time without media, instead of leaving
        the manifest's span longer than its media and interruptions (V17)."""
        if media_end is None or stopped_at - media_end <= LAG_DECLARED_US:
            return
        lag = (stopped_at - media_end) / 1e6
        reason = (f"capture stopped {lag:.1f} s after the end of its media: the encoder ran slower than real "
                  "time (the station was overloaded)")
        log.warning("session %s: %s", sid, reason)
        self.journal.open_interruption(sid, media_end, "encoder_stall", reason)
        self.journal.close_interruptions(sid, stopped_at)

    def _keep_partials(self, sid: str) -> None:
        """Move plain files the session did not seal (undecodable partials) out of the spool, kept for inspection.

        Each kept file is a session event, so the manifest declares it.
        """
        spool = self.station.spool / sid
        for run in self.journal.runs(sid):
            run_dir = Path(run.dir)
            sealed = {seg.file for seg in self.journal.segments(sid) if seg.run == run.run}
            for path in sorted(run_dir.glob("seg*.ts")):
                if path.name in sealed:
                    continue
                kept = self._inspect_path(sid, f"{run_dir.name}-{path.name}")
                kept.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.replace(path, kept)
                fsync_dir(kept.parent)
                log.warning("session %s: unsealed partial %s kept in %s", sid, path.name, kept)
                self._event(sid, self.clock.now_us(), "partial_kept",
                            f"{run_dir.name}/{path.name} ({kept.stat().st_size} bytes) kept unsealed in {kept}")
        if spool.exists():
            fsync_dir(spool)

    # --- recovery -----------------------------------------------------------

    def recover(self) -> list[str]:
        """After a crash: salvage every open session's segments and open a crash interruption.

        A session whose manifest is already queued or stored is closed with that manifest
        (never a second one); its header and locator are queued again from the journal if a
        journal written before the atomic start lost them.
        """
        recovered = []
        for s in self.journal.open_sessions():
            if s.session_id in self.keys:
                continue
            if self._adopt_manifest(s):
                continue
            # The wall clock may have stepped back while the agent was down: session time never runs backwards.
            behind = self.clock.hold_from(self._last_time(s.session_id))
            if behind:
                detail = (f"wall clock is {behind / 1e6:.3f} s behind what the session holds after the restart; "
                          "session time continues from there")
                log.warning("session %s: %s", s.session_id, detail)
                self._event(s.session_id, self.clock.now_us(), "clock_step", detail)
            self._requeue_start(s)
            self._requeue_keys(s)
            self._check_outbox(s.session_id)
            for run in self.journal.runs(s.session_id):
                self._collect(s.session_id, run, final=True)
                if run.ended_us is None:
                    self.journal.end_run(s.session_id, run.run, self.clock.now_us(), "crash")
            self._seal_captured(s.session_id)
            start = self._media_end(s.session_id) or s.started_at_us
            if not any(i["end_us"] is None for i in self.journal.interruptions(s.session_id)):
                self.journal.open_interruption(s.session_id, start, "crash", "agent restarted after it stopped")
            self._event(s.session_id, self.clock.now_us(), "recovered", "")
            recovered.append(s.session_id)
        return recovered

    def _check_outbox(self, sid: str) -> None:
        """Before a crashed session is closed: hold every queued object whose file a power cut tore.

        The uploader checks each object again before its put; checking here too puts the
        damage into the session's manifest as an event.
        """
        for name, path, sha256 in self.journal.pending_objects(limit=1_000_000, session_id=sid):
            try:
                with open(path, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            except FileNotFoundError:
                continue  # uploaded before the crash lost the confirmation; the uploader asks the store
            if sha256 is not None and digest != sha256:
                error = f"outbox file {path} is damaged (SHA-256 differs from the journal's); kept, not uploaded"
                log.error("session %s: damaged: %s", sid, error)
                self.journal.hold(name, "damaged", error, self.clock.now_us())

    def _requeue_start(self, s: SessionRow) -> None:
        """Queue the header and locator from what the journal holds, if they were never queued."""
        for name, data in ((header_name(s.prefix), s.header.encode()),
                           (locator_name(s.session_id), locator_bytes(s.prefix, s.session_id))):
            if self.journal.object_state(name) is None:
                log.warning("session %s: %s was never queued; queued again from the journal", s.session_id, name)
                self.journal.queue(s.session_id, self._outbox_write(s.session_id, name, data))

    def _requeue_keys(self, s: SessionRow) -> None:
        """A key the journal counts but whose object was never queued (a journal written before the key
        object and its count were one transaction) gets a key object now.

        No segment was sealed under such a key (the object was lost before any sealing), so the
        key object names a fresh data key nobody used; the store is asked first, so that an
        object already there (a rebuilt journal does not list it) is never replaced.
        """
        used = {json.loads(seg.record)["key_index"] for seg in self.journal.segments(s.session_id, "sealed")
                if seg.record}
        for idx in range(1, s.key_count):
            name = key_name(s.prefix, idx)
            if self.journal.object_state(name) is not None:
                continue
            if idx in used:
                log.error("session %s: key %d sealed segments but its key object is lost; not made again",
                          s.session_id, idx)
                continue
            try:
                if self.store.exists(name):
                    continue
            except StoreError as err:
                log.warning("session %s: cannot ask the store for %s (%s); asked again at the next start",
                            s.session_id, name, err)
                continue
            obj = sign_document(build_key_object(
                session_id=s.session_id, key_index=idx, created_at_us=self.clock.now_us(),
                cause="resume_after_crash",
                wrapped_key=wrap_key(new_data_key(), self.station.custodian, s.session_id, idx),
            ), self.station.key)
            log.warning("session %s: key %d was counted but its key object never queued; made again", s.session_id,
                        idx)
            self.journal.queue(s.session_id, self._outbox_write(s.session_id, name, canonical_json(obj)))

    def _adopt_manifest(self, s: SessionRow) -> bool:
        """Close an open session with the manifest already queued or stored for it, if there is one."""
        name = manifest_name(s.prefix)
        data: bytes | None = None
        queued = self.journal.object_state(name) is not None
        local = self.station.outbox / s.session_id / name.replace("/", "__")
        if queued and local.exists():
            data = local.read_bytes()
        else:
            try:
                if self.store.exists(name):
                    data = self.store.get(name)
            except StoreError as err:
                log.warning("session %s: cannot ask the store for its manifest (%s)", s.session_id, err)
        if data is None:
            return False
        try:
            manifest = parse_json_object(data, f"manifest {name}")
            verify_document(manifest, self.station.key.public_key(), f"manifest {name}")
        except (FormatError, SignatureError) as err:
            log.error("session %s: manifest %s is not this station's (%s); sealing the session's own", s.session_id,
                      name, err)
            return False
        if manifest.get("session_id") != s.session_id:
            return False
        reason = str(manifest.get("end_reason", "recovered_after_crash"))
        log.warning("session %s: its manifest was already %s; closed with it", s.session_id,
                    "queued" if queued else "stored")
        self.journal.set_session_state(s.session_id, "closed", reason, data.decode())
        self._keep_partials(s.session_id)
        shutil.rmtree(self.station.spool / s.session_id, ignore_errors=True)
        return True

    def uploader_started(self) -> None:
        if self.uploader.thread is None:
            self.uploader.start()

    def finish_uploads(self) -> int:
        """Wait for the outbox to drain (bounded); returns how many objects are still queued."""
        self.head_stamper.settle(timeout_s=10.0)
        self.stamp_manifests()
        self.uploader_started()
        self.uploader.drain(self.settings.drain_timeout_s)
        return self.journal.pending_count()

    def session_summary(self, sid: str) -> dict[str, Any]:
        s = self.journal.session(sid)
        segs = self.journal.segments(sid)
        return {
            "session_id": sid,
            "prefix": s.prefix,
            "segments": len(segs),
            "duration_s": round(sum(x.duration_us for x in segs) / 1e6, 3),
            "interruptions": self.journal.interruptions(sid),
            "chain_head": s.chain_head,
            "pending_uploads": self.journal.pending_count(sid),
            # Objects the uploader holds back, kept locally (`irms-agent upload` names them and exits 4).
            "held_uploads": sum(1 for h in self.journal.held_objects() if h.session_id == sid),
            "store": self.store.url,
        }
