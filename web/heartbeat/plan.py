"""What a batch of accepted heartbeats writes, planned without I/O (pure).

Each heartbeat's credit is `coverage.run_credit` (the run behind it, the rule the offline checker
shares), checked against the station's latest failing heartbeat; the spans follow `coverage.advance_span`,
heartbeat by heartbeat in arrival order, as for one heartbeat at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from web.coverage import Policy, advance_span, run_credit
from web.heartbeat.pending import Pending


@dataclass
class StationRow:
    """The columns of a station a batch reads (under lock) and writes back."""

    pk: int
    status: str
    room_id: int | None
    last_seen_us: int | None
    last_heartbeat: int | tuple[str, int] | None
    """A stored heartbeat id, or ("new", i): the i-th heartbeat of this batch."""
    last_span: int | tuple[str, int] | None
    """A stored span id, or ("new", j): the j-th span this batch opens."""
    span_start_us: int | None
    span_end_us: int | None
    last_fail_us: int | None = None
    """When the station's latest heartbeat that was not ok holds: a run claimed across it is refused."""


@dataclass
class NewSpan:
    station_pk: int
    room_id: int
    start_us: int
    end_us: int
    closed: bool = False


@dataclass
class Plan:
    """Everything one batch writes, in order."""

    heartbeats: list[Pending] = field(default_factory=list)
    spans: list[NewSpan] = field(default_factory=list)
    span_updates: dict[int, tuple[int, bool]] = field(default_factory=dict)
    """Stored span id -> (end_us, closed), its final values after this batch."""
    stations: dict[int, StationRow] = field(default_factory=dict)


def _set_span(plan: Plan, row: StationRow, end_us: int, closed: bool) -> None:
    ref = row.last_span
    if isinstance(ref, tuple):
        span = plan.spans[ref[1]]
        span.end_us, span.closed = end_us, closed
    elif ref is not None:
        plan.span_updates[ref] = (end_us, closed)


def plan_batch(items: list[Pending], rows: Mapping[int, StationRow], policy: Policy) -> Plan:
    """Apply each accepted heartbeat, in arrival order, to its station's row and uptime span.

    `items` are those the batch accepted; `rows` their stations as read under lock (changed in place).
    The span rule is `coverage.advance_span`, as for one heartbeat at a time.
    """
    plan = Plan()
    for item in items:
        row = rows[item.station_pk]
        plan.stations[row.pk] = row
        ref = ("new", len(plan.heartbeats))
        plan.heartbeats.append(item)
        if row.last_seen_us is None or row.last_seen_us <= item.at_us:
            row.last_seen_us = item.at_us
            row.last_heartbeat = ref
        ok = not item.reasons
        credit = None
        if item.facts is not None:
            fails = () if row.last_fail_us is None else (row.last_fail_us,)
            credit = run_credit(item.facts, ok, policy, item.facts.enrolled_at_us, fails).span
        if not ok and (row.last_fail_us is None or item.at_us > row.last_fail_us):
            row.last_fail_us = item.at_us
        if credit is not None:
            item.run_since_us = credit[0]
        if row.room_id is None:
            continue
        open_span = None
        if row.last_span is not None and row.span_start_us is not None and row.span_end_us is not None:
            open_span = (row.span_start_us, row.span_end_us)
        upd = advance_span(open_span, credit, ok, item.at_us)
        if upd.action == "extend":
            _set_span(plan, row, upd.end_us, False)
            row.span_end_us = upd.end_us
        elif upd.action == "close" and open_span is not None:
            _set_span(plan, row, open_span[1], True)
            row.span_start_us = row.span_end_us = None
        elif upd.action == "past" and upd.end_us > upd.start_us:
            plan.spans.append(NewSpan(row.pk, row.room_id, upd.start_us, upd.end_us, closed=True))
        elif upd.action == "open":
            if open_span is not None:
                _set_span(plan, row, open_span[1], True)
            row.last_span = ("new", len(plan.spans))
            plan.spans.append(NewSpan(row.pk, row.room_id, upd.start_us, upd.end_us))
            row.span_start_us, row.span_end_us = upd.start_us, upd.end_us
    return plan


def resolve(ref: int | tuple[str, int] | None, new_ids: list[int]) -> int | None:
    return new_ids[ref[1]] if isinstance(ref, tuple) else ref

