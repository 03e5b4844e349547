"""A room's and a station's health over time, read from the stored heartbeats and uptime spans.

A station beats every minute: 30 days are 43,200 heartbeats. A chart needs a few hundred points, so the
history is sampled: the first heartbeat of each of `SAMPLES` equal slices of the range, each found by one
index probe on (station_pk, sent_us), never by reading the whole range. Only the sampled bodies are parsed.
What a page shows of a heartbeat is equipment health only: probes, disk, clock, versions, self-test results;
never anything of a session's content.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from web.coverage import DAY_US, Policy, RoomIn, RoomStatus, SiteIn, Span, StationIn, compute_trend, room_status
from web.evidence import _fetch
from web.heartbeat.body import facts_from_verdict
from web.models import StationStatus, UptimeSpan

SAMPLES = 120
RANGES_DAYS = (1, 7, 30)
"""The time ranges a page offers (its picker); 30 is the longest kept in view."""

PROBE_KINDS: dict[str, tuple[str, ...]] = {
    "picture": ("camera.black",),
    "sound": ("mic.silent", "mic.level"),
}
"""Which probe's value each chart plots: the picture's mean luma, the sound's level in dBFS."""
CHART_OF = {check: chart for chart, checks in PROBE_KINDS.items() for check in checks}


class Beat(NamedTuple):
    """One heartbeat as a page shows it (a tuple: a page builds hundreds)."""

    station_id: str
    sent_us: int
    received_us: int
    ok: bool
    reasons: tuple[Any, ...]
    disk_free_bytes: int | None
    clock_offset_ms: int | None
    values: dict[str, dict[str, float]]
    """Per chart (picture, sound), per device, the probe's value."""
    versions: dict[str, str]
    selftest: tuple[int, bool] | None


@dataclass(frozen=True)
class History:
    start_us: int
    end_us: int
    samples: list[Beat]
    latest: list[Beat]
    selftests: list[tuple[int, bool, str]]
    """(when, passed, station) of every self-test result the sampled and latest heartbeats name, newest first."""
    days: list[tuple[dt.date, float | None]] = field(default_factory=list)
    """Uptime per local day over the range."""


def _number(v: object) -> float | None:
    if type(v) is str or type(v) is int or type(v) is float:  # noqa: E721 - bool is not a value here
        try:
            return float(v)
        except ValueError:
            return None
    return None


def beat_of(station_id: str, sent_us: int, received_us: int, ok: bool, reasons: str, disk: int | None,
            clock: int | None, body: str) -> Beat:
    """A stored heartbeat row as a page shows it (pure; a body that is not an object yields no values)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    values: dict[str, dict[str, float]] = {}
    for p in doc.get("probes") or ():
        check = p.get("check") if isinstance(p, dict) else None
        chart = CHART_OF.get(check) if isinstance(check, str) else None
        if chart is not None:
            v = _number(p.get("value"))
            if v is not None:
                values.setdefault(chart, {})[str(p.get("device") or "?")] = v
    st = doc.get("selftest")
    selftest = None
    if isinstance(st, dict) and isinstance(st.get("at_us"), int) and isinstance(st.get("ok"), bool):
        selftest = (st["at_us"], st["ok"])
    versions = doc.get("versions")
    versions = {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) and versions else {}
    verdict = () if ok else facts_from_verdict(sent_us, received_us, ok, reasons).verdict or ()
    return Beat(station_id, sent_us, received_us, ok, verdict, disk, clock, values, versions, selftest)


_COLS = "id, sent_us, received_us, ok, reasons, disk_free_bytes, clock_offset_ms, body"


_SAMPLE_SQL = (
    # BIGINT casts: PostgreSQL would type a small width as integer, and b.i * width would overflow it.
    "WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i + 1 < ?) "
    "SELECT {cols} FROM b JOIN heartbeats h ON h.id = (SELECT h2.id FROM heartbeats h2 WHERE h2.station_pk = ? "
    "AND h2.sent_us >= CAST(? AS BIGINT) + b.i * CAST(? AS BIGINT) "
    "AND h2.sent_us < CAST(? AS BIGINT) + (b.i + 1) * CAST(? AS BIGINT) ORDER BY h2.sent_us LIMIT 1) "
    "ORDER BY h.sent_us")


def _sample_rows(s: Session, cols: str, station_pk: int, start_us: int, end_us: int,
                 samples: int) -> list[tuple[Any, ...]]:
    width = max((end_us - start_us) // samples, 1)
    return _fetch(s, _SAMPLE_SQL.format(cols=cols),
                  (samples, station_pk, start_us, width, start_us, width))


def sample_ids(s: Session, station_pk: int, start_us: int, end_us: int, samples: int = SAMPLES) -> list[int]:
    """The first heartbeat of each of `samples` equal slices of [start, end): one index probe per slice."""
    return [r[0] for r in _sample_rows(s, "h.id", station_pk, start_us, end_us, samples)]


_COLS = "h.sent_us, h.received_us, h.ok, h.reasons, h.disk_free_bytes, h.clock_offset_ms, h.body"


def _beats(rows: Sequence[tuple[Any, ...]], station_id: str) -> list[Beat]:
    return [beat_of(station_id, sent, rec, bool(ok), reasons, disk, clock, body)
            for sent, rec, ok, reasons, disk, clock, body in rows]


def history(s: Session, stations: Sequence[tuple[int, str]], start_us: int, end_us: int, *, latest: int = 20,
            samples: int = SAMPLES) -> History:
    """The sampled heartbeats of these stations (pk, station id) over [start, end), their `latest` last ones,
    and the self-test results they name: two statements a station, whatever the length of its history."""
    sampled: list[Beat] = []
    newest: list[Beat] = []
    for pk, sid in stations:
        sampled += _beats(_sample_rows(s, _COLS, pk, start_us, end_us, samples), sid)
        newest += _beats(_fetch(s, f"SELECT {_COLS} FROM heartbeats h WHERE h.station_pk = ? AND h.sent_us < ? "
                                   "ORDER BY h.sent_us DESC LIMIT ?", (pk, end_us, latest)), sid)
    sampled.sort(key=lambda b: b.sent_us)
    newest = sorted(newest, key=lambda b: -b.sent_us)[:latest]
    seen: dict[tuple[int, str], bool] = {}
    for b in (*sampled, *newest):
        if b.selftest is not None:
            seen[(b.selftest[0], b.station_id)] = b.selftest[1]
    selftests = sorted(((at, ok, sid) for (at, sid), ok in seen.items()), key=lambda x: -x[0])
    return History(start_us, end_us, sampled, newest, selftests)


# --- one room -------------------------------------------------------------------------------------------


class Place(NamedTuple):
    """A room with its site and province, as the room's page names them."""

    room_id: int
    room_code: str
    room_name: str
    site_id: int
    site_code: str
    site_name: str
    facility_type: str
    province_code: str
    province_name: str


def find_room(s: Session, site_code: str, room_code: str) -> Place | None:
    rows = _fetch(s, "SELECT r.id, r.code, r.name, si.id, si.code, si.name, si.facility_type, p.code, p.name "
                     "FROM rooms r JOIN sites si ON si.id = r.site_id JOIN provinces p ON p.id = si.province_id "
                     "WHERE si.code = ? AND r.code = ?", (site_code, room_code))
    return Place(*rows[0]) if rows else None


class RoomStation(NamedTuple):
    id: int
    station_id: str
    status: str
    enrolled_at_us: int
    last_seen_us: int | None


@dataclass(frozen=True)
class RoomView:
    place: Place
    status: RoomStatus
    stations: list[RoomStation]
    history: History
    uptime: float | None
    """Share of the range the room was working."""


def _room_spans(s: Session, station_pks: Sequence[int], since_us: int) -> list[Span]:
    if not station_pks:
        return []
    marks = ", ".join("?" * len(station_pks))
    return [Span._make(r) for r in _fetch(
        s, f"SELECT room_id, start_us, end_us FROM {UptimeSpan.__tablename__} "
           f"WHERE station_pk IN ({marks}) AND end_us >= ?", (*station_pks, since_us))]


def room_view(s: Session, place: Place, now_us: int, days: int, policy: Policy, tz_name: str) -> RoomView:
    """Everything a room's page shows, read for this room only (no national computation)."""
    room_id = place.room_id
    # One statement for the room's stations and their newest heartbeat's verdict (as the dashboard reads it).
    rows = _fetch(s, "SELECT st.id, st.station_id, st.status, st.enrolled_at_us, st.last_seen_us, hb.sent_us, "
                     "hb.received_us, hb.ok, hb.reasons FROM stations st LEFT OUTER JOIN heartbeats hb "
                     "ON hb.id = st.last_heartbeat_id WHERE st.room_id = ? ORDER BY st.enrolled_at_us, st.id",
                  (room_id,))
    stations = [RoomStation(pk, sid, status, enrolled, seen) for pk, sid, status, enrolled, seen, *_ in rows]
    room_in = RoomIn(room_id, place.site_id, place.room_code, place.room_name)
    site_in = SiteIn(place.site_id, place.site_code, place.site_name, place.province_code, place.facility_type)
    revoked = StationStatus.REVOKED.value
    latest = {sid: facts_from_verdict(sent, received, bool(ok), reasons)
              for _, sid, status, _, _, sent, received, ok, reasons in rows if sent is not None and status != revoked}
    status = room_status(room_in, site_in,
                         [StationIn(st.station_id, room_id, st.status == revoked) for st in stations], latest,
                         now_us, policy)
    start = now_us - days * DAY_US
    hist = history(s, [(st.id, st.station_id) for st in stations], start, now_us)
    spans = [sp for sp in _room_spans(s, [st.id for st in stations], start) if sp.room_id == room_id]
    trend = compute_trend([site_in], [room_in], spans, now_us, days, ZoneInfo(tz_name))
    day_points = [(p.day, p.room_uptime) for p in trend.days]
    hist = History(hist.start_us, hist.end_us, hist.samples, hist.latest, hist.selftests, day_points)
    return RoomView(place, status, stations, hist, trend.room_uptime.get(room_id))
