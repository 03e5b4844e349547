"""The 30-day trend as an inline SVG (no script, no network): a pure function of the points."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from web.coverage import DayPoint

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 720, 220, 44, 12, 12, 28


def _path(values: Sequence[float | None], xs: Sequence[float]) -> str:
    parts: list[str] = []
    pen_up = True
    for x, v in zip(xs, values, strict=True):
        if v is None:
            pen_up = True
            continue
        y = PAD_T + (1 - v) * (H - PAD_T - PAD_B)
        parts.append(f"{'M' if pen_up else 'L'}{x:.1f},{y:.1f}")
        pen_up = False
    return " ".join(parts)


def trend_svg(points: Sequence[DayPoint], title: str, label_facilities: str, label_rooms: str) -> Markup:
    """Two lines (facilities equipped, room uptime) from 0 to 100% over the days given."""
    n = max(len(points), 1)
    step = (W - PAD_L - PAD_R) / max(n - 1, 1)
    xs = [PAD_L + i * step for i in range(len(points))]
    fac = _path([p.facility_equipped for p in points], xs)
    rooms = _path([p.room_uptime for p in points], xs)
    grid = []
    for pct in (0, 25, 50, 75, 100):
        y = PAD_T + (1 - pct / 100) * (H - PAD_T - PAD_B)
        grid.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" class="grid"/>'
                    f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{pct}%</text>')
    ticks = []
    for i, p in enumerate(points):
        if i % 7 == (len(points) - 1) % 7:
            ticks.append(f'<text x="{xs[i]:.1f}" y="{H - 8}" class="axis" text-anchor="middle">'
                         f'{p.day.strftime("%d/%m")}</text>')
    t = escape(title)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" '
           f'class="trend"><title>{t}</title>{"".join(grid)}{"".join(ticks)}'
           f'<path d="{fac}" class="line-facilities" fill="none"/>'
           f'<path d="{rooms}" class="line-rooms" fill="none"/>'
           f'<text x="{PAD_L + 8}" y="{PAD_T + 14}" class="legend-facilities">{escape(label_facilities)}</text>'
           f'<text x="{PAD_L + 8}" y="{PAD_T + 30}" class="legend-rooms">{escape(label_rooms)}</text></svg>')
    return Markup(svg)  # noqa: S704 - every text in it is escaped above
