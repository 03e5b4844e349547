"""Loads the stored evidence into the plain values `web.coverage` computes over."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.config import WebConfig
from web.coverage import (
    Coverage,
    HeartbeatFacts,
    Policy,
    ProvinceIn,
    RoomIn,
    SiteIn,
    Span,
    StationIn,
    Trend,
    UptimeSums,
    accumulate_uptime,
    compute_coverage,
    day_bounds,
    trend_from,
)
from web.heartbeat.body import facts_from_verdict
from web.models import Province, Site, StationStatus, UptimeSpan


def policy_of(config: WebConfig) -> Policy:
    return Policy(interval_s=config.heartbeat_interval_s, clock_tolerance_s=config.clock_tolerance_s,
                  min_disk_free_bytes=config.min_disk_free_bytes,
                  required_probe_kinds=tuple(config.required_probe_kinds),
                  selftest_max_age_s=config.selftest_max_age_s, selftest_grace_s=config.selftest_grace_s)


@dataclass(frozen=True)
class Snapshot:
    provinces: list[ProvinceIn]
    sites: list[SiteIn]
    rooms: list[RoomIn]
    stations: list[StationIn]
    latest: dict[str, HeartbeatFacts]


def snapshot(s: Session) -> Snapshot:
    """Everything coverage needs now, in a handful of queries (no history scan).

    Rooms and stations are tens of thousands of rows: they are read through the driver's cursor,
    not as ORM rows (that conversion was a quarter of the dashboard's time on PostgreSQL).
    """
    prov_rows = s.execute(select(Province.id, Province.code, Province.name)).all()
    provinces = [ProvinceIn(code, name) for _, code, name in prov_rows]
    pcode = {pid: code for pid, code, _ in prov_rows}
    sites = [SiteIn(sid, code, name, pcode[pid], ftype) for sid, code, name, pid, ftype in
             s.execute(select(Site.id, Site.code, Site.name, Site.province_id, Site.facility_type))]
    rooms = [RoomIn._make(r) for r in _fetch(s, "SELECT id, site_id, code, name FROM rooms")]
    revoked = StationStatus.REVOKED.value
    # One pass over the stations with their newest heartbeat (stations.last_heartbeat_id), no history scan.
    rows = _fetch(s, "SELECT st.station_id, st.room_id, st.status, hb.sent_us, hb.received_us, hb.ok, hb.reasons "
                     "FROM stations st LEFT OUTER JOIN heartbeats hb ON hb.id = st.last_heartbeat_id "
                     "ORDER BY st.enrolled_at_us")
    stations = [StationIn(sid, room_id, status == revoked) for sid, room_id, status, *_ in rows]
    latest: dict[str, HeartbeatFacts] = {
        sid: facts_from_verdict(sent, received, bool(ok), reasons)
        for sid, _, status, sent, received, ok, reasons in rows if sent is not None and status != revoked}
    return Snapshot(provinces, sites, rooms, stations, latest)


def _fetch(s: Session, sql: str, params: tuple[int | str, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a fixed query (positional `?` parameters) straight from the driver, in this session's transaction."""
    if s.get_bind().dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cur = s.connection().connection.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


@contextmanager
def bulk_compute() -> Iterator[None]:
    """Pause the cyclic garbage collector while building tens of thousands of small tuples.

    They hold no reference cycles (reference counting frees them), but their sheer number
    triggers full collections that scan the whole heap: measured at 10,000 rooms this nearly
    halves the dashboard's time. The collector is restored even on error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def current_coverage(s: Session, config: WebConfig, now_us: int) -> tuple[Snapshot, Coverage]:
    snap = snapshot(s)
    return snap, compute_coverage(snap.provinces, snap.sites, snap.rooms, snap.stations, snap.latest, now_us,
                                  policy_of(config))


_PAST: dict[tuple[Any, ...], tuple[float, UptimeSums]] = {}


def _spans(s: Session, since_us: int, before_us: int | None = None) -> list[Span]:
    sql = f"SELECT room_id, start_us, end_us FROM {UptimeSpan.__tablename__} WHERE end_us >= ?"
    params: tuple[int, ...] = (since_us,)
    if before_us is not None:
        sql += " AND start_us < ?"
        params += (before_us,)
    return [Span._make(r) for r in _fetch(s, sql, params)]


def trend(s: Session, snap: Snapshot, config: WebConfig, now_us: int) -> Trend:
    """The 30-day trend. Past days change only when queued heartbeats arrive late, so their sums are
    kept per process for `trend_cache_s`; today is always computed from the spans as they are now.

    The cache is keyed by the newest span that starts before today (a late heartbeat taken by any server
    node adds one): every node sees the late heartbeat at once, not after its own cache expires."""
    cache = config.trend_cache_s > 0
    tz = ZoneInfo(config.timezone)
    bounds = day_bounds(now_us, config.trend_days, tz)
    past_bounds, today = bounds[:-1], bounds[-1:]
    newest = _fetch(s, f"SELECT max(id) FROM {UptimeSpan.__tablename__} WHERE start_us < ?",
                    (today[0][1],))[0] if cache else None
    key = (str(s.get_bind().engine.url), config.timezone, config.trend_days, today[0][0], newest, len(snap.rooms))
    hit = _PAST.get(key) if cache else None
    if hit is not None and time.monotonic() - hit[0] < config.trend_cache_s:
        past = hit[1]
    else:
        spans = _spans(s, bounds[0][1], today[0][1]) if past_bounds else []
        past = accumulate_uptime(snap.sites, snap.rooms, spans,
                                 past_bounds, now_us)
        if cache:
            _PAST.clear()
            _PAST[key] = (time.monotonic(), past)
    live = accumulate_uptime(snap.sites, snap.rooms, _spans(s, today[0][1]), today, now_us)
    return trend_from([past, live], snap.sites, snap.rooms, now_us)
