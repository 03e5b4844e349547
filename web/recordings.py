"""Sessions known to the server: from station events and the store, verified and cached, searched.

A session row is made by the first station event that names it (the start event carries the
station-signed header) or by `irms-web sessions sync`, which reads every locator, header and
manifest in the configured store. `ensure_verified` runs `verifier.session.audit` (integrity
rules only: public keys, the server's witnessed chain heads) and caches the result, the rules
that failed, and the segment records replay needs. A verified session is never verified again
(objects are write-once); anything else is re-checked on view after `verify_recheck_s`.
The pure parts (playlist, timeline) take values and return values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from evidence.canonical import canonical_json, parse_json_object
from evidence.errors import FormatError
from evidence.formats import header_name, manifest_name
from evidence.keys import ed25519_public_from_raw
from storage.base import ObjectStore
from storage.errors import ObjectNotFound, StoreError
from storage.url import open_store
from verifier.live import read_on
from verifier.rules import Finding
from verifier.session import Options, Report, audit
from verifier.trust import TrustStore
from web.config import WebConfig
from web.db import rows_changed
from web.errors import NotFound, StoreMissing
from web.heartbeat.witness import witnessed_heads
from web.models import RecordingSession, SessionEvent, SessionSegment, SessionStatus, Station

_stores: dict[str, ObjectStore] = {}
_stores_lock = threading.Lock()


def store_of(cfg: WebConfig) -> ObjectStore:
    """The configured object store (opened once per process)."""
    if not cfg.store_url:
        raise StoreMissing("no object store is configured (store_url): sessions cannot be read")
    with _stores_lock:
        store = _stores.get(cfg.store_url)
        if store is None:
            try:
                store = open_store(cfg.store_url)
            except StoreError as err:
                raise StoreMissing(f"the object store cannot be opened: {err}") from None
            _stores[cfg.store_url] = store
    return store


# --- rows from headers, manifests, events ---------------------------------------------------------------


def get_or_create(s: Session, session_id: str, now_us: int) -> RecordingSession:
    row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == session_id)).first()
    if row is None:
        row = RecordingSession(session_id=session_id, station_id="", site="", room="", case_number="",
                               case_number_filed="", case_corrected=False, suspect="", interrogators="[]",
                               legal_basis="", end_reason="",
                               status=SessionStatus.RECORDING.value, prefix="", header_known=False,
                               verification="", verification_findings="[]", manifest_sha256="", manifest="",
                               updated_at_us=now_us)
        s.add(row)
        s.flush()
    return row


def apply_header(row: RecordingSession, header: dict[str, Any], prefix: str | None = None) -> None:
    """Fill case metadata from a session header (the signed `irms.session/1` document)."""
    case = header.get("case") or {}
    row.station_id = str(header.get("station_id", row.station_id))[:64]
    row.site = str(header.get("site", row.site))[:64]
    row.room = str(header.get("room", row.room))[:64]
    row.case_number_filed = str(case.get("case_number", ""))[:200]
    if not row.case_corrected:  # a prosecutor's correction stands (web/sessions.py `correct_case`)
        row.case_number = row.case_number_filed
    row.suspect = str(case.get("suspect", ""))[:300]
    row.interrogators = json.dumps(list(case.get("interrogators", [])), ensure_ascii=False)
    row.legal_basis = str(case.get("legal_basis", ""))
    if isinstance(header.get("started_at_us"), int):
        row.started_at_us = header["started_at_us"]
    row.prefix = prefix or row.prefix or f"{row.site}/{row.room}/{row.session_id}/"
    row.header_known = True


def apply_manifest(row: RecordingSession, manifest: dict[str, Any]) -> None:
    row.status = SessionStatus.ENDED.value
    if isinstance(manifest.get("ended_at_us"), int):
        row.ended_at_us = manifest["ended_at_us"]
    row.end_reason = str(manifest.get("end_reason", ""))[:64]


def apply_event(row: RecordingSession, ev: SessionEvent | Any) -> None:
    if row.last_event_us is None or ev.at_us > row.last_event_us:
        row.last_event_us = ev.at_us
    if not row.site:
        row.site, row.room = ev.site, ev.room
    if ev.kind == "start" and row.started_at_us is None:
        row.started_at_us = ev.at_us
    if ev.kind == "end":
        row.status = SessionStatus.ENDED.value
        row.ended_at_us = ev.at_us
        row.end_reason = (ev.detail or "")[:64]


@dataclass(frozen=True)
class SyncResult:
    seen: int
    added: int
    updated: int
    errors: list[str]


def sync_store(s: Session, store: ObjectStore, now_us: int) -> SyncResult:
    """Read every session in the store (locators, headers, manifests) into the sessions table."""
    seen = added = updated = 0
    errors: list[str] = []
    for name in store.list("sessions/"):
        if not name.endswith(".json"):
            continue
        seen += 1
        try:
            loc = parse_json_object(store.get(name), "session locator")
            sid, prefix = str(loc["session_id"]), str(loc["prefix"])
            header = parse_json_object(store.get(header_name(prefix)), "session header")
            try:
                manifest: dict[str, Any] | None = parse_json_object(store.get(manifest_name(prefix)), "manifest")
            except ObjectNotFound:
                manifest = None
        except (FormatError, KeyError, StoreError) as err:
            errors.append(f"{name}: {err}")
            continue
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).first()
        if row is None:
            row = get_or_create(s, sid, now_us)
            added += 1
        else:
            updated += 1
        apply_header(row, header, prefix)
        if manifest is not None:
            apply_manifest(row, manifest)
        row.updated_at_us = now_us
    s.flush()
    return SyncResult(seen, added, updated, errors)


def find_row(s: Session, session_id: str) -> RecordingSession:
    row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == session_id)).first()
    if row is None:
        raise NotFound(f"no session {session_id}")
    return row


# --- verification, cached -------------------------------------------------------------------------------


def trust_for(s: Session, station_id: str) -> TrustStore:
    """The server's trust store for one station: its enrolled key (the server's trust anchor is its enrollment).
    An unknown station gives an empty store, and V02 names it."""
    station = s.scalars(select(Station).where(Station.station_id == station_id)).first()
    if station is None:
        return TrustStore({}, "the server's enrolled stations")
    key = ed25519_public_from_raw(base64.b64decode(station.public_key), "station key")
    return TrustStore({station_id: key}, "the server's enrolled stations")


def options_for(s: Session, row: RecordingSession, ciphertexts: bool = True) -> Options:
    witnessed = [(w["index"], w["chain"]) for w in witnessed_heads(s, row.session_id)]
    return Options(trust=trust_for(s, row.station_id), witnessed=witnessed, media=False, ciphertexts=ciphertexts)


def verify_now(s: Session, store: ObjectStore, row: RecordingSession, now_us: int, *,
               ciphertexts: bool = True) -> Report:
    """Audit the session against the store, cache the result and the segment records. Without
    `ciphertexts` only the documents are checked (records signed and chained: the live refresh); such a
    result is never cached as verified."""
    if not row.header_known:
        try:
            header = parse_json_object(store.get(header_name(row.prefix)), "session header")
            apply_header(row, header)
        except (FormatError, StoreError):
            pass
    report = audit(store, row.session_id, options_for(s, row, ciphertexts), fail_fast=False)
    if report.status == "verified" and not ciphertexts:
        report = audit(store, row.session_id, options_for(s, row), fail_fast=False)
    row.prefix = report.prefix or row.prefix
    if report.header:
        apply_header(row, report.header, report.prefix)
    row.verification = report.status
    row.verification_findings = json.dumps([f.to_json() for f in report.findings], ensure_ascii=False)
    row.verified_at_us = now_us
    row.segment_count = report.segments
    row.duration_us = report.duration_us
    if report.manifest is not None:
        apply_manifest(row, report.manifest)
        row.manifest = canonical_json(report.manifest).decode("utf-8")
        try:
            row.manifest_sha256 = hashlib.sha256(store.get(manifest_name(report.prefix))).hexdigest()
        except StoreError:
            row.manifest_sha256 = ""
    s.execute(delete(SessionSegment).where(SessionSegment.session_pk == row.id))
    if report.records:
        s.execute(insert(SessionSegment), [
            {"session_pk": row.id, "idx": r["index"], "run": r["run"], "key_index": r["key_index"],
             "start_us": r["start_us"], "duration_us": r["duration_us"], "cipher_sha256": r["cipher_sha256"],
             "cipher_size": r["cipher_size"], "plain_sha256": r["plain_sha256"], "plain_size": r["plain_size"],
             "chain": r["chain"]}
            for r in report.records])
    row.updated_at_us = now_us
    s.flush()
    return report


def check_not_disposed(row: RecordingSession) -> None:
    if row.disposed_at_us is not None:
        raise NotFound(f"session {row.session_id} was disposed of (web/retention.py): its objects are gone, its "
                       "tombstone remains")


def ensure_verified(s: Session, cfg: WebConfig, row: RecordingSession, now_us: int) -> RecordingSession:
    """The cached verification, refreshed when it could have changed (never once verified). A disposed session
    has no objects left to read: 404, naming its disposal."""
    check_not_disposed(row)
    if row.verification == "verified":
        return row
    # An ended session whose last objects were still uploading is worth another look soon.
    window_s = min(5, cfg.verify_recheck_s) if row.status == SessionStatus.ENDED.value else cfg.verify_recheck_s
    if row.verified_at_us is not None and now_us - row.verified_at_us < window_s * 1_000_000:
        return row
    try:
        verify_now(s, store_of(cfg), row, now_us)
    except ObjectNotFound:
        row.verification = ""
        row.verification_findings = json.dumps([{"rule": "V01", "name": "session not in the store yet",
                                                 "message": "no objects uploaded yet", "segment": None}])
        row.verified_at_us = now_us
    s.commit()
    return row


LIVE_REFRESH_US = 250_000
"""A recording session's records are looked at in the store at most this often, whoever asks (a look that
finds nothing new is one GET)."""


def in_flight(f: dict[str, Any], accepted: int) -> bool:
    """A finding that only says an object is still on its way while the session records: a ciphertext not
    uploaded yet (V05), or a chain head witnessed (V13) or time-stamped (V19) past the records in the store
    (the station reports and stamps a head as it seals the segment, before the upload)."""
    seg = f.get("segment")
    return seg is not None and (f.get("rule") == "V05" or (f.get("rule") in ("V13", "V19") and int(seg) >= accepted))


def refresh_recording(s: Session, store: ObjectStore, row: RecordingSession, t: int,
                      every_us: int = LIVE_REFRESH_US) -> RecordingSession:
    """The records of a session still recording as the store holds them now, incrementally.

    At most once per `every_us` per session (one refresh at a time, whichever process: the row's
    `verified_at_us` is claimed by a conditional UPDATE, which PostgreSQL and SQLite both serialise). While
    no record is cached (the first look, or nothing uploaded yet) it is the document audit (`verify_now`
    without the byte rules); after that only the records after the last one cached are read (verifier/live.py), each
    checked and chained on from the cached chain value, and appended to the cached segments. A failing record
    stops the live view before it (write-once objects: nothing after it is read while recording; the audit
    after the end judges the whole session). Each segment is checked against its record when served."""
    if row.verified_at_us is not None and t - row.verified_at_us < every_us:
        return row  # looked at just now (most requests: no write, no lock)
    claimed = rows_changed(s, update(RecordingSession).where(
        RecordingSession.id == row.id, RecordingSession.status == SessionStatus.RECORDING.value,
        or_(RecordingSession.verified_at_us.is_(None), RecordingSession.verified_at_us <= t - every_us))
        .values(verified_at_us=t).execution_options(synchronize_session=False))
    if not claimed:
        s.commit()
        s.refresh(row)  # another request refreshed it just now: its result
        return row
    s.refresh(row)
    findings = findings_of(row)
    accepted = row.segment_count or 0
    blocking = [f for f in findings if not in_flight(f, accepted)]
    last = s.execute(select(SessionSegment.idx, SessionSegment.chain).where(SessionSegment.session_pk == row.id)
                     .order_by(SessionSegment.idx.desc()).limit(1)).first()
    if row.verification and blocking:
        pass  # stopped at a failing record or a session-wide finding: the audit after the end judges it
    elif not row.verification or last is None or last.chain is None or last.idx != accepted - 1:
        try:
            report = verify_now(s, store, row, t, ciphertexts=False)
            kept = [f.to_json() for f in report.findings if not in_flight(f.to_json(), report.segments)]
            if report.status == "failed" and not kept:  # only objects still on their way
                row.verification = "unterminated"
            row.verification_findings = json.dumps(kept, ensure_ascii=False)
        except ObjectNotFound:
            row.verified_at_us = t  # nothing uploaded yet
    else:
        key = trust_for(s, row.station_id).station_key(row.station_id)
        witnessed = [(w["index"], w["chain"]) for w in witnessed_heads(s, row.session_id)]
        got = read_on(store, row.prefix, row.session_id, key, next_index=last.idx + 1, prev_chain=last.chain,
                      witnessed=witnessed)
        if got.records:
            s.execute(insert(SessionSegment), [
                {"session_pk": row.id, "idx": r["index"], "run": r["run"], "key_index": r["key_index"],
                 "start_us": r["start_us"], "duration_us": r["duration_us"], "cipher_sha256": r["cipher_sha256"],
                 "cipher_size": r["cipher_size"], "plain_sha256": r["plain_sha256"], "plain_size": r["plain_size"],
                 "chain": r["chain"]} for r in got.records])
            row.segment_count = accepted + len(got.records)
            row.duration_us = (row.duration_us or 0) + sum(int(r["duration_us"]) for r in got.records)
        # What was only on its way at the last look is not judged again here (each ciphertext is checked
        # when served; the audit after the end judges them all).
        row.verification = "failed" if got.finding is not None else "unterminated"
        row.verification_findings = json.dumps([got.finding.to_json()] if got.finding is not None else [],
                                               ensure_ascii=False)
        row.updated_at_us = t
    s.commit()
    return row


def findings_of(row: RecordingSession) -> list[dict[str, Any]]:
    data = json.loads(row.verification_findings or "[]")
    return data if isinstance(data, list) else []


def failed_rules(row: RecordingSession) -> list[str]:
    return sorted({str(f.get("rule")) for f in findings_of(row) if f.get("rule")})


def segments_of(s: Session, row: RecordingSession) -> list[SessionSegment]:
    return list(s.scalars(select(SessionSegment).where(SessionSegment.session_pk == row.id)
                          .order_by(SessionSegment.idx)))


def events_of(s: Session, session_id: str) -> list[SessionEvent]:
    return list(s.scalars(select(SessionEvent).where(SessionEvent.session_id == session_id)
                          .order_by(SessionEvent.at_us, SessionEvent.seq)))


# --- search ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    case_number: str = ""
    suspect: str = ""
    room: str = ""
    from_us: int | None = None
    to_us: int | None = None
    interrogator: str = ""
    """An interrogator's (investigator's) name, part of it, as the signed header lists them."""


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(s: Session, q: Query, limit: int = 200,
           where: Sequence[ColumnElement[bool]] = ()) -> list[RecordingSession]:
    """Sessions by case number, suspect (substring, case-insensitive), room or site code, and start date,
    among those `where` admits (the reader's scope, web/scope.py)."""
    stmt = _filtered(select(RecordingSession).where(*where), q)
    return list(s.scalars(stmt.order_by(RecordingSession.started_at_us.desc()).limit(limit)))


def _filtered(stmt: Any, q: Query) -> Any:
    if q.case_number:
        stmt = stmt.where(RecordingSession.case_number.ilike(_like(q.case_number), escape="\\"))
    if q.suspect:
        stmt = stmt.where(RecordingSession.suspect.ilike(_like(q.suspect), escape="\\"))
    if q.interrogator:
        stmt = stmt.where(RecordingSession.interrogators.ilike(_like(q.interrogator), escape="\\"))
    if q.room:
        site, _, room = q.room.partition("/")
        if room:
            stmt = stmt.where(RecordingSession.site == site, RecordingSession.room == room)
        else:
            stmt = stmt.where(or_(RecordingSession.room == site, RecordingSession.site == site))
    if q.from_us is not None:
        stmt = stmt.where(RecordingSession.started_at_us >= q.from_us)
    if q.to_us is not None:
        stmt = stmt.where(RecordingSession.started_at_us < q.to_us)
    return stmt


@dataclass(frozen=True)
class CaseGroup:
    """The sessions of one case on a page of the list (or one session whose case the reader may not see)."""

    case_number: str
    """Empty when withheld from the reader, or not known yet (no signed header)."""
    sessions: list[RecordingSession]


def search_grouped(s: Session, q: Query, *, where: Sequence[ColumnElement[bool]], personal: ColumnElement[bool],
                   newest_first: bool = True, page: int = 1, per_page: int = 20) -> tuple[list[CaseGroup], int]:
    """The sessions `where` admits that match `q`, grouped by case, groups ordered by their latest start
    (`newest_first`) and paged (`per_page` groups a page); (the page's groups, the number of groups).

    A session is grouped by its case number only where `personal` (SQL: the reader may see its personal
    data) holds; any other stands alone, so grouping never tells that two withheld sessions share a case."""
    key = case((personal & (RecordingSession.case_number != ""), RecordingSession.case_number),
               else_=literal("#") + RecordingSession.session_id).label("case_key")
    base = _filtered(select(key, RecordingSession.started_at_us).where(*where), q).subquery()
    latest = func.max(func.coalesce(base.c.started_at_us, 0))
    groups = select(base.c.case_key, latest.label("latest")).group_by(base.c.case_key)
    total = int(s.scalar(select(func.count()).select_from(groups.subquery())) or 0)
    order = (latest.desc() if newest_first else latest.asc(), base.c.case_key)
    keys = [k for k, _ in s.execute(groups.order_by(*order).limit(per_page).offset((page - 1) * per_page))]
    if not keys:
        return [], total
    rows = s.execute(_filtered(select(RecordingSession, key).where(*where), q).where(key.in_(keys))
                     .order_by(RecordingSession.started_at_us.desc() if newest_first
                               else RecordingSession.started_at_us.asc())).all()
    by_key: dict[str, list[RecordingSession]] = {k: [] for k in keys}
    for row, k in rows:
        by_key[k].append(row)
    return [CaseGroup("" if k.startswith("#") else k, by_key[k]) for k in keys], total


# --- replay playlist (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seg:
    idx: int
    run: int
    start_us: int
    duration_us: int


def _pdt(us: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


PLAYLIST_GROUP = 5
"""Consecutive segments of one run served as one playlist entry (byte-concatenated MPEG-TS, ~10 s)."""


PLAYLIST_FORM = 2
"""Bumped whenever `playlist` makes other text from the same segments: the servers' kept playlists
(web/replay.py) are named with it, so an upgrade does not serve one made the old way."""

GAP_TOLERANCE_US = 300_000
"""A gap between consecutive segments of a run longer than this is a discontinuity (the verifier's V16 bound)."""


def media_ends(segments: Sequence[Seg], gap_tolerance_us: int = GAP_TOLERANCE_US) -> list[tuple[bool, int]]:
    """For each segment: whether it begins a stretch of the media timeline (the first one, a run change or a gap
    over the tolerance: a discontinuity), and where it ends on that timeline (µs from the session's media start).

    Within a stretch the player places the media by its timestamps, and a record's times are its media's (the
    recorder's segment list): a segment ends where it ends after the stretch's first start, so a gap under the
    tolerance (a camera stream's hiccup, a looped clip's seam) shifts nothing after it. Adding up durations
    instead dropped every such gap: the benchmark's 8-hour session (a 1-minute clip looped, a 64 ms seam each
    minute) drifted 7.6 s from its media by the middle, where a seek loaded the entry the playlist named, found
    its pictures later than the playlist said, and loaded the entry before it as well (bench/replay.py)."""
    out: list[tuple[bool, int]] = []
    prev: Seg | None = None
    at = first = end = 0  # where the stretch begins on the timeline, its first start (wall clock), the last end
    for x in segments:
        new = prev is None or (x.run != prev.run
                               or x.start_us - (prev.start_us + prev.duration_us) > gap_tolerance_us)
        if new:
            at, first = end, x.start_us
        # never back: V16 allows an overlap of up to 0.3 s, which a very short segment could end inside of
        end = max(end, at + x.start_us + x.duration_us - first)
        out.append((new, end))
        prev = x
    return out


def playlist(segments: Sequence[Seg], *, gap_tolerance_us: int = GAP_TOLERANCE_US, group: int = PLAYLIST_GROUP,
             live: bool = False, ended: bool = True) -> str:
    """An HLS VOD playlist of the segments: a discontinuity (with the wall-clock time) at every run change
    and every interruption. Up to `group` consecutive segments of a run form one entry,
    `seg/<first>-<last>.ts` (a lone one `seg/<index>.ts`), served decrypted one segment at a time: an
    8-hour session is a playlist of ~2,900 entries instead of 14,400. The very first entry is a single
    segment so that playback starts after one segment, not five. Each entry lasts from the end of the one
    before it to its own end on the media timeline (`media_ends`: a short gap is the next entry's, not lost),
    in whole milliseconds of that timeline, so the entries add up to where the player finds the media.

    `live`: an HLS EVENT playlist, one entry per segment (entries never change as segments come: an entry's
    length needs only the segment before it); without the end tag until the session `ended`: the player
    follows its live edge and may scroll back."""
    if live:
        group = 1
    entries: list[list[Seg]] = []
    ends: list[int] = []  # each entry's end on the media timeline, ms
    breaks: set[int] = set()  # entries that begin after a discontinuity
    for x, (new, end_us) in zip(segments, media_ends(segments, gap_tolerance_us), strict=True):
        if not entries or new or len(entries) == 1 or len(entries[-1]) >= group:
            if new and entries:
                breaks.add(len(entries))
            entries.append([])
            ends.append(0)
        entries[-1].append(x)
        ends[-1] = round(end_us / 1000)
    lengths = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    # RFC 8216 4.3.3.1: each EXTINF rounded to the nearest integer is at most the target duration. Rounding up
    # instead made 1.04 s segments a 2 s target, and a live player keeps (and polls) a target duration behind
    # the live edge.
    target = max((math.floor(ms / 1000 + 0.5) for ms in lengths), default=1)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{max(target, 1)}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:EVENT" if live else "#EXT-X-PLAYLIST-TYPE:VOD"]
    for n, (e, ms) in enumerate(zip(entries, lengths, strict=True)):
        if n == 0:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(e[0].start_us)}")
        elif n in breaks:
            lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(e[0].start_us)}")
        lines.append(f"#EXTINF:{ms // 1000}.{ms % 1000:03d},")
        lines.append(f"seg/{e[0].idx:08d}.ts" if len(e) == 1 else f"seg/{e[0].idx:08d}-{e[-1].idx:08d}.ts")
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def media_map(segments: Sequence[Seg]) -> list[list[int]]:
    """[[media offset ms, wall-clock start ms], ...] at each discontinuity, on the playlist's timeline
    (`media_ends`): the page shows recording time."""
    out: list[list[int]] = []
    end_us = 0
    for x, (new, end) in zip(segments, media_ends(segments), strict=True):
        if new:
            out.append([round(end_us / 1000), x.start_us // 1000])
        end_us = end
    return out


# --- timeline (pure) ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    kind: str  # recorded | pause | interruption | event | marker (the investigator's) | note (a server marker)
    x: float
    width: float
    title: str
    start_us: int
    end_us: int


def timeline(start_us: int, end_us: int, segments: Iterable[Seg], interruptions: Iterable[dict[str, Any]],
             events: Iterable[tuple[int, str, str]], width: float = 1000.0,
             words: Callable[[str], str] = str) -> list[Shape]:
    """Shapes for the session timeline: recorded stretches, pauses, other interruptions, point events.
    `words` names an interruption cause or an event kind in the reader's language in the shapes' titles."""
    span = max(end_us - start_us, 1)

    def x_of(t: int) -> float:
        return round(min(max((t - start_us) / span, 0.0), 1.0) * width, 2)

    shapes: list[Shape] = []
    run_start: int | None = None
    run_end = 0
    for x in segments:
        if run_start is not None and x.start_us - run_end <= 300_000:
            run_end = x.start_us + x.duration_us
            continue
        if run_start is not None:
            shapes.append(Shape("recorded", x_of(run_start), max(x_of(run_end) - x_of(run_start), 0.5), "",
                                run_start, run_end))
        run_start, run_end = x.start_us, x.start_us + x.duration_us
    if run_start is not None:
        shapes.append(Shape("recorded", x_of(run_start), max(x_of(run_end) - x_of(run_start), 0.5), "",
                            run_start, run_end))
    for it in interruptions:
        a, b = it.get("start_us"), it.get("end_us")
        if not isinstance(a, int):
            continue
        b = b if isinstance(b, int) else end_us
        kind = "pause" if it.get("cause") == "pause" else "interruption"
        title = f"{words(str(it.get('cause', '')))}: {it.get('reason', '')}".strip(": ")
        shapes.append(Shape(kind, x_of(a), max(x_of(b) - x_of(a), 1.0), title, a, b))
    for at, kind, detail in events:
        if kind == "marker":
            shapes.append(Shape("marker", x_of(at), 1.0, f"⚑ {detail}".strip(), at, at))
        if kind in ("health", "device_lost", "salvaged", "recovered", "capture_stop") or kind.startswith("health"):
            shapes.append(Shape("event", x_of(at), 1.0, f"{words(kind)}: {detail}".strip(": "), at, at))
    return shapes


def finding_text(f: dict[str, Any]) -> str:
    try:
        return str(Finding(str(f["rule"]), str(f["message"]), f.get("segment")))
    except KeyError:
        return f"{f.get('rule', '?')}: {f.get('message', '')}"
