"""V16-V17: the timeline. Segments follow each other, and what they leave uncovered is declared.

"Covered" (V16): a gap between consecutive segments [a, b] is covered when every instant of it lies
within the union of the declared interruptions, each widened by the gap tolerance on both sides;
interruptions that touch or overlap after widening join into one.
"""

from __future__ import annotations

from collections.abc import Iterable

from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession

Interval = tuple[int, int]


def union(intervals: Iterable[Interval], widen: int = 0) -> list[Interval]:
    """The union of closed intervals, each widened by `widen` on both sides, as disjoint sorted intervals."""
    out: list[Interval] = []
    for start, end in sorted((a - widen, b + widen) for a, b in intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def covered(gap: Interval, declared: list[Interval]) -> bool:
    """True when `gap` lies inside one interval of a union (a union's intervals are disjoint)."""
    return any(a <= gap[0] and gap[1] <= b for a, b in declared)


def gaps(s: ParsedSession) -> list[tuple[int, Interval]]:
    """(segment, gap) for every gap longer than the tolerance before a segment (its predecessor present)."""
    out = []
    prev: dict[str, int] | None = None
    for rec in s.ordered:
        if prev is not None and prev["index"] == rec["index"] - 1:
            end = prev["start_us"] + prev["duration_us"]
            if rec["start_us"] - end > s.tolerances.gap_us:
                out.append((rec["index"], (end, rec["start_us"])))
        prev = rec
    return out


def v16_continuity(s: ParsedSession) -> list[Finding]:
    """No overlap beyond the tolerance; with a manifest, every longer gap covered by declared interruptions.
    Without a manifest the interruptions are not declared yet: gaps are reported, not judged."""
    tol = s.tolerances.gap_us
    out = []
    prev: dict[str, int] | None = None
    for rec in s.ordered:
        if prev is not None and prev["index"] == rec["index"] - 1:
            overlap = prev["start_us"] + prev["duration_us"] - rec["start_us"]
            if overlap > tol:
                out.append(Finding("V16", f"overlaps the previous segment by {overlap / 1e6:.3f} s", rec["index"]))
        prev = rec
    if s.manifest is not None:
        declared = union(((it["start_us"], it["end_us"]) for it in s.manifest["interruptions"]), tol)
        out += [Finding("V16", f"unexplained gap of {(b - a) / 1e6:.3f} s before this segment", i)
                for i, (a, b) in gaps(s) if not covered((a, b), declared)]
    return sorted(out, key=Finding.sort_key)


def span_tolerance(s: ParsedSession, span_us: int) -> int:
    return s.tolerances.span_us + span_us * s.tolerances.span_ppm // 1_000_000


def v17_span(s: ParsedSession) -> list[Finding]:
    """ended_at_us − started_at_us = media + declared interruptions (their union, clipped to the span),
    within 3 s + 1 % of the span; and every segment lies inside the span, within the same tolerance."""
    m = s.manifest
    if m is None or [r["index"] for r in s.ordered] != list(range(s.count)):
        return []  # without every record accepted (V04, V07, V08 fail) the media total is unknown
    start, end = m["started_at_us"], m["ended_at_us"]
    span = end - start
    allowed = span_tolerance(s, span)
    media = sum(r["duration_us"] for r in s.ordered)
    clipped = [(max(it["start_us"], start), min(it["end_us"], end)) for it in m["interruptions"]]
    declared = sum(b - a for a, b in union(c for c in clipped if c[0] < c[1]))
    out = []
    uncovered = span - media - declared
    if abs(uncovered) > allowed:
        out.append(Finding("V17", f"the manifest spans {span / 1e6:.3f} s, media and declared interruptions "
                                  f"cover {(media + declared) / 1e6:.3f} s (tolerance {allowed / 1e6:.3f} s)"))
    for rec in s.ordered:
        if rec["start_us"] < start - allowed or rec["start_us"] + rec["duration_us"] > end + allowed:
            out.append(Finding("V17", "segment lies outside the manifest's span", rec["index"]))
            break
    return out
