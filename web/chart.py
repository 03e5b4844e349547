"""Charts as inline SVG (no script, no network): pure functions of their points.

The legend is never drawn over the lines: it is HTML under the plot (a `figcaption`), one key per series,
so it wraps on a narrow screen instead of covering the data. Colours come from CSS classes (`s0`, `s1`...),
the page's Content-Security-Policy allows no inline style.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from web.coverage import DayPoint

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 720, 200, 56, 12, 10, 24


@dataclass(frozen=True)
class Series:
    """One line: its label (the legend's key) and its points (x, y); y None lifts the pen (a gap)."""

    label: str
    points: Sequence[tuple[float, float | None]]


def _y(v: float, lo: float, hi: float) -> float:
    return PAD_T + (1 - (v - lo) / (hi - lo)) * (H - PAD_T - PAD_B)


def _x(v: float, lo: float, hi: float) -> float:
    return PAD_L + (v - lo) / (hi - lo) * (W - PAD_L - PAD_R) if hi > lo else PAD_L


def _path(points: Sequence[tuple[float, float | None]], xr: tuple[float, float], yr: tuple[float, float]) -> str:
    # The scale once, not per point: a chart has hundreds of points and a page several charts.
    ax = (W - PAD_L - PAD_R) / (xr[1] - xr[0]) if xr[1] > xr[0] else 0.0
    ay = (H - PAD_T - PAD_B) / (yr[1] - yr[0])
    parts: list[str] = []
    pen_up = True
    for x, v in points:
        if v is None:
            pen_up = True
            continue
        parts.append(f"{'M' if pen_up else 'L'}{PAD_L + (x - xr[0]) * ax:.1f},{PAD_T + (yr[1] - v) * ay:.1f}")
        pen_up = False
    return " ".join(parts)


def nice_range(values: Sequence[float], floor: float | None = None, ceil: float | None = None) -> tuple[float, float]:
    """The y range of a chart: the data's, padded by a tenth, never empty, within floor and ceil if given."""
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or max(abs(hi) * 0.1, 1.0)
    lo, hi = lo - pad, hi + pad
    if floor is not None:
        lo = max(lo, floor)
    if ceil is not None:
        hi = min(hi, ceil)
    return (lo, hi) if hi > lo else (lo, lo + 1)


def line_chart(series: Sequence[Series], *, title: str, x_range: tuple[float, float], y_range: tuple[float, float],
               x_ticks: Sequence[tuple[float, str]], y_format: Callable[[float], str], css: str = "chart",
               empty: str = "") -> Markup:
    """Lines over a shared x range, five y grid lines labelled by `y_format`, the legend under the plot."""
    t = escape(title)
    lo, hi = y_range
    grid = []
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = _y(v, lo, hi)
        grid.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" class="grid"/>'
                    f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
                    f'{escape(y_format(v))}</text>')
    ticks = [f'<text x="{_x(x, *x_range):.1f}" y="{H - 6}" class="axis" text-anchor="middle">{escape(label)}</text>'
             for x, label in x_ticks]
    lines = []
    for i, s in enumerate(series):
        d = _path(s.points, x_range, y_range)
        if d:
            lines.append(f'<path d="{d}" class="s{i % 6}" fill="none"><title>{escape(s.label)}</title></path>')
        lone = [p for j, p in enumerate(s.points) if p[1] is not None
                and (j == 0 or s.points[j - 1][1] is None) and (j + 1 == len(s.points) or s.points[j + 1][1] is None)]
        lines.extend(f'<circle cx="{_x(x, *x_range):.1f}" cy="{_y(v, lo, hi):.1f}" r="2" class="s{i % 6}"/>'
                     for x, v in lone if v is not None)
    note = (f'<text x="{W / 2:.0f}" y="{H / 2:.0f}" class="axis empty" text-anchor="middle">{escape(empty)}</text>'
            if empty and not any(v is not None for s in series for _, v in s.points) else "")
    legend = "".join(f'<span class="chart-key"><span class="swatch s{i % 6}"></span>{escape(s.label)}</span>'
                     for i, s in enumerate(series))
    svg = (f'<figure class="{escape(css)}"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{t}" class="chart-svg"><title>{t}</title>{"".join(grid)}{"".join(ticks)}{"".join(lines)}'
           f'{note}</svg><figcaption class="legend"><span class="chart-title">{t}</span>{legend}</figcaption>'
           f'</figure>')
    return Markup(svg)  # noqa: S704 - every text in it is escaped above


def bar_chart(bars: Sequence[tuple[str, float | None]], *, title: str, label: str, css: str = "chart") -> Markup:
    """Bars from 0 to 100% (one per day), a missing value drawn as a gap; the label under the plot."""
    t = escape(title)
    n = max(len(bars), 1)
    step = (W - PAD_L - PAD_R) / n
    parts = []
    for pct in (0, 25, 50, 75, 100):
        y = _y(pct, 0, 100)
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{pct}%</text>')
    for i, (name, v) in enumerate(bars):
        x = PAD_L + i * step
        if v is not None:
            top = _y(v * 100, 0, 100)
            band = "bar-ok" if v >= 0.95 else "bar-warn" if v >= 0.8 else "bar-bad"
            parts.append(f'<rect x="{x + step * 0.1:.1f}" y="{top:.1f}" width="{step * 0.8:.1f}" '
                         f'height="{_y(0, 0, 100) - top:.1f}" class="{band}"><title>{escape(name)}: '
                         f'{v * 100:.1f}%</title></rect>')
        if i % 7 == (len(bars) - 1) % 7:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{H - 6}" class="axis" text-anchor="middle">'
                         f'{escape(name)}</text>')
    svg = (f'<figure class="{escape(css)}"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{t}" class="chart-svg"><title>{t}</title>{"".join(parts)}</svg>'
           f'<figcaption class="legend"><span class="chart-title">{t}</span>'
           f'<span class="chart-key"><span class="swatch bar-ok"></span>{escape(label)}</span></figcaption></figure>')
    return Markup(svg)  # noqa: S704 - every text in it is escaped above


def day_ticks(start_us: int, end_us: int, tz_name: str, count: int = 6) -> list[tuple[float, str]]:
    """About `count` evenly spaced x labels over a time range: dd/mm, or HH:MM when it is under two days."""
    tz = ZoneInfo(tz_name)
    short = end_us - start_us < 2 * 86_400_000_000
    out = []
    for i in range(count + 1):
        at = start_us + (end_us - start_us) * i / count
        t = dt.datetime.fromtimestamp(at / 1_000_000, tz)
        out.append((at, t.strftime("%H:%M" if short else "%d/%m")))
    return out


def trend_svg(points: Sequence[DayPoint], title: str, label_facilities: str, label_rooms: str) -> Markup:
    """The national trend: facilities equipped and room uptime per day, 0 to 100%."""
    fac = Series(label_facilities, [(i, None if p.facility_equipped is None else p.facility_equipped * 100)
                                    for i, p in enumerate(points)])
    rooms = Series(label_rooms, [(i, None if p.room_uptime is None else p.room_uptime * 100)
                                 for i, p in enumerate(points)])
    ticks = [(float(i), p.day.strftime("%d/%m")) for i, p in enumerate(points) if i % 7 == (len(points) - 1) % 7]
    return line_chart([fac, rooms], title=title, x_range=(0, max(len(points) - 1, 1)), y_range=(0, 100),
                      x_ticks=ticks, y_format=lambda v: f"{v:.0f}%", css="chart trend")
