"""The IT desk's drill-down under the dashboard: province -> site -> room, a page per room and per station,
and the full list of failing rooms.

Equipment health only (R14: IT staff manage equipment but never see content): these pages read heartbeats,
uptime spans and the places, never a session, a case or a person. Provinces, sites, rooms and the failing list
are shown to every role, as the dashboard is; a station's page (its raw heartbeats, hardware profile and
versions) to the roles that look after equipment and to auditors.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from web import i18n
from web.auth import ALL_ROLES, require_roles
from web.chart import Series, bar_chart, day_ticks, line_chart, nice_range
from web.context import db_session, lang, now_us, state
from web.coverage import DAY_US
from web.errors import BadRequest, NotFound
from web.evidence import bulk_compute, current_coverage, policy_of, trend
from web.health import RANGES_DAYS, History, find_room, history, room_view
from web.models import Province, Room, Site, Station

bp = Blueprint("rooms", __name__, url_prefix="/coverage")
EQUIPMENT_ROLES = ("admin", "it_staff", "auditor")


def _days() -> int:
    raw = request.args.get("days", "30")
    if not raw.isdigit() or int(raw) not in RANGES_DAYS:
        raise BadRequest(f"days: {raw[:20]!r} is not one of {', '.join(map(str, RANGES_DAYS))}")
    return int(raw)


def _band(ratio: float | None) -> str:
    """The colour band of a working share: ok from 95%, warn from 80%, else bad; none without rooms."""
    if ratio is None:
        return "band-none"
    return "band-ok" if ratio >= 0.95 else "band-warn" if ratio >= 0.8 else "band-bad"


@bp.app_context_processor
def _helpers() -> dict[str, object]:
    return {"band": _band, "gib": lambda b: "—" if b is None else f"{b / 2**30:.1f} GiB"}


def _unit_format(unit: str) -> Callable[[float], str]:
    return lambda v: f"{v:.0f} {unit}"


def _charts(h: History) -> list[object]:
    """The probe values over the range: picture, sound, disk, clock (one chart each: different units)."""
    language = lang()

    def t(msg: str) -> str:
        return i18n.translate(msg, language)

    tz = state().config.timezone
    xr = (float(h.start_us), float(h.end_us))
    ticks = day_ticks(h.start_us, h.end_us, tz)
    out: list[object] = []
    for chart, title, unit in (("picture", t("Picture: mean brightness"), "luma"),
                               ("sound", t("Sound: level"), "dBFS")):
        devices = sorted({d for b in h.samples for d in b.values.get(chart, {})})
        series = [Series(d, [(float(b.sent_us), b.values.get(chart, {}).get(d)) for b in h.samples])
                  for d in devices]
        vals = [v for se in series for _, v in se.points if v is not None]
        out.append(line_chart(series or [Series(t("no value reported"), [])], title=title, x_range=xr,
                              y_range=nice_range(vals), x_ticks=ticks,
                              y_format=_unit_format(unit), empty=t("no value reported")))
    disk = [(float(b.sent_us), None if b.disk_free_bytes is None else b.disk_free_bytes / 2**30) for b in h.samples]
    dv = [v for _, v in disk if v is not None]
    out.append(line_chart([Series(t("free disk"), disk)], title=t("Disk: free space"), x_range=xr,
                          y_range=nice_range(dv, floor=0), x_ticks=ticks, y_format=lambda v: f"{v:.0f} GiB",
                          empty=t("no value reported")))
    clock = [(float(b.sent_us), None if b.clock_offset_ms is None else float(b.clock_offset_ms)) for b in h.samples]
    cv = [v for _, v in clock if v is not None]
    out.append(line_chart([Series(t("clock offset"), clock)], title=t("Clock: offset from the server"), x_range=xr,
                          y_range=nice_range(cv), x_ticks=ticks, y_format=lambda v: f"{v:.0f} ms",
                          empty=t("no value reported")))
    return out


@bp.route("/provinces/<province>")
@require_roles(*ALL_ROLES)
def province(province: str) -> ResponseReturnValue:
    s = db_session()
    row = s.scalars(select(Province).where(Province.code == province)).first()
    if row is None:
        raise NotFound(f"no province {province}")
    cfg, t = state().config, now_us()
    with bulk_compute():
        snap, cov = current_coverage(s, cfg, t)
        tr = trend(s, snap, cfg, t)
    figures = next(p.figures for p in cov.provinces if p.province.code == province)
    sites = [st for st in cov.sites if st.site.province_code == province]
    uptime: dict[int, list[float]] = {}
    for r in cov.rooms:
        if r.site.province_code == province:
            uptime.setdefault(r.site.id, []).append(tr.room_uptime.get(r.room.id, 0.0))
    site_uptime = {sid: sum(v) / len(v) for sid, v in uptime.items()}
    return render_template("coverage/province.html", province=row, figures=figures, sites=sites,
                           site_uptime=site_uptime, now_us=t)


def _site_or_404(code: str) -> Site:
    site = db_session().scalars(select(Site).where(Site.code == code)).first()
    if site is None:
        raise NotFound(f"no site {code}")
    return site


@bp.route("/sites/<site>")
@require_roles(*ALL_ROLES)
def site(site: str) -> ResponseReturnValue:
    s = db_session()
    row = _site_or_404(site)
    cfg, t = state().config, now_us()
    with bulk_compute():
        snap, cov = current_coverage(s, cfg, t)
        tr = trend(s, snap, cfg, t)
    rooms = [r for r in cov.rooms if r.site.id == row.id]
    prov = s.get(Province, row.province_id)
    return render_template("coverage/site.html", site=row, province=prov, rooms=rooms, uptime=tr.room_uptime,
                           now_us=t)


@bp.route("/sites/<site>/rooms/<room>")
@require_roles(*ALL_ROLES)
def room(site: str, room: str) -> ResponseReturnValue:
    s = db_session()
    place = find_room(s, site, room)
    if place is None:
        raise NotFound(f"site {site} has no room {room}")
    days = _days()
    cfg, t = state().config, now_us()
    view = room_view(s, place, t, days, policy_of(cfg), cfg.timezone)
    language = lang()
    uptime_chart = bar_chart([(d.strftime("%d/%m"), v) for d, v in view.history.days],
                             title=i18n.translate("Uptime per day", language),
                             label=i18n.translate("share of the day the room was working", language))
    return render_template("coverage/room.html", view=view, history=view.history, days=days,
                           ranges=RANGES_DAYS,
                           uptime_chart=uptime_chart, charts=_charts(view.history), now_us=t)


@bp.route("/stations/<station_id>")
@require_roles(*EQUIPMENT_ROLES)
def station(station_id: str) -> ResponseReturnValue:
    s = db_session()
    st = s.scalars(select(Station).where(Station.station_id == station_id)).first()
    if st is None:
        raise NotFound(f"no station {station_id}")
    days = _days()
    t = now_us()
    h = history(s, [(st.id, st.station_id)], t - days * DAY_US, t)
    room_row = s.get(Room, st.room_id) if st.room_id is not None else None
    site_row = s.get(Site, room_row.site_id) if room_row is not None else None
    versions = h.latest[0].versions if h.latest else {}
    return render_template("coverage/station.html", st=st, room=room_row, site=site_row, history=h,
                           versions=versions, days=days, ranges=RANGES_DAYS, charts=_charts(h), now_us=t)


@bp.route("/failing")
@require_roles(*ALL_ROLES)
def failing() -> ResponseReturnValue:
    s = db_session()
    cfg, t = state().config, now_us()
    with bulk_compute():
        _, cov = current_coverage(s, cfg, t)
    rows = [r for r in cov.rooms if not r.working]
    return render_template("coverage/failing.html", rows=rows, now_us=t)
