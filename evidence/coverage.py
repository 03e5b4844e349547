"""Coverage as a pure function over plain values (ARCHITECTURE.md, "Coverage").

It lives in the bottom package so that the server (web/coverage.py re-exports it) and the offline
checker (`irms-verify coverage`) compute the figure with the same code.

A **room is working** when a station is enrolled for it and not revoked, its
latest heartbeat is fresh (no older than two heartbeat intervals), every
required device probe in it passed, the store is reachable, free disk is above
the threshold and the clock is within tolerance. A **facility is equipped**
when at least one of its rooms is working. Nothing here reads the clock or the
database: callers pass `now_us` and the evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "Coverage",
    "Credit",
    "NO_CREDIT",
    "DAY_US",
    "DayPoint",
    "Figures",
    "HeartbeatFacts",
    "Policy",
    "Probe",
    "ProvinceFigures",
    "ProvinceIn",
    "Reason",
    "RoomIn",
    "RoomStatus",
    "SELFTEST_MAX_AGE_S",
    "SiteIn",
    "SiteStatus",
    "Span",
    "SpanUpdate",
    "StationIn",
    "Trend",
    "US",
    "UptimeSums",
    "accumulate_uptime",
    "RunClaim",
    "RunState",
    "advance_span",
    "compute_coverage",
    "compute_trend",
    "day_bounds",
    "facts_from_doc",
    "judge_heartbeat",
    "judge_run",
    "judge_selftest",
    "next_run",
    "run_credit",
    "run_from_doc",
    "reason",
    "room_status",
    "spans_from_credits",
    "trend_from",
]

US = 1_000_000
DAY_US = 86_400 * US
SELFTEST_MAX_AGE_S = 26 * 3600


@dataclass(frozen=True)
class Policy:
    interval_s: int = 60
    clock_tolerance_s: int = 2
    min_disk_free_bytes: int = 5 * 2**30
    required_probe_kinds: tuple[str, ...] = ("camera", "mic")
    selftest_max_age_s: int = SELFTEST_MAX_AGE_S
    """A room needs a passing daily self-test (R19) no older than this (26 h: a day and some slack); 0: off."""
    selftest_grace_s: int = SELFTEST_MAX_AGE_S
    """For this long after its station's enrolment a room works without a self-test (its first is scheduled)."""

    def as_json(self) -> dict[str, object]:
        """The policy as the coverage evidence bundle carries it (docs/evidence-format.md)."""
        return {"format": "irms.coverage-policy/1", "interval_s": self.interval_s,
                "clock_tolerance_s": self.clock_tolerance_s, "min_disk_free_bytes": self.min_disk_free_bytes,
                "required_probe_kinds": list(self.required_probe_kinds),
                "selftest_max_age_s": self.selftest_max_age_s, "selftest_grace_s": self.selftest_grace_s}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Policy:
        """The policy from `as_json` (a bundle's policy.json, a heartbeat answer's `policy`); raises
        ValueError naming what is wrong."""
        if not isinstance(doc, Mapping) or doc.get("format") != "irms.coverage-policy/1":
            raise ValueError("not an irms.coverage-policy/1 document")
        try:
            return cls(interval_s=int(doc["interval_s"]), clock_tolerance_s=int(doc["clock_tolerance_s"]),
                       min_disk_free_bytes=int(doc["min_disk_free_bytes"]),
                       required_probe_kinds=tuple(str(k) for k in doc["required_probe_kinds"]),
                       selftest_max_age_s=int(doc["selftest_max_age_s"]),
                       selftest_grace_s=int(doc["selftest_grace_s"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"missing or bad member {err}") from None

    @property
    def fresh_us(self) -> int:
        """A heartbeat older than this means the station went silent (two intervals)."""
        return 2 * self.interval_s * US


@dataclass(frozen=True)
class Reason:
    """Why a room fails: a stable code plus parameters, translated when shown."""

    code: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str:
        return dict(self.params).get(name, "")

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, **dict(self.params)}


def reason(code: str, **params: object) -> Reason:
    return Reason(code, tuple(sorted((k, str(v)) for k, v in params.items())))


class Probe(NamedTuple):
    check: str
    device: str
    ok: bool
    reason: str = ""

    @property
    def kind(self) -> str:
        return self.check.split(".", 1)[0]


class HeartbeatFacts(NamedTuple):
    """What one heartbeat says, as coverage needs it."""

    sent_us: int
    received_us: int
    probes: tuple[Probe, ...] = ()
    disk_free_bytes: int | None = None
    clock_offset_ms: int | None = None
    store_ok: bool | None = None
    selftest_at_us: int | None = None
    selftest_ok: bool | None = None
    verdict: tuple[Reason, ...] | None = None
    """What `judge_heartbeat` said when the heartbeat arrived (stored), so history is not re-judged."""
    enrolled_at_us: int | None = None
    """When the sending station was enrolled (the self-test's grace period runs from it)."""
    run: RunClaim | None = None
    """The run the station signed into the heartbeat (None: a body without `run`)."""

    @property
    def at_us(self) -> int:
        """When the evidence holds: the station's time, never later than the server received it."""
        return min(self.sent_us, self.received_us)


@dataclass(frozen=True, slots=True)
class RunClaim:
    """The `run` member of a heartbeat (docs/evidence-format.md, "Heartbeat runs"): the run of ok heartbeats
    the station says this one belongs to, with what the policy needs to judge the whole run."""

    prev: str | None
    count: int
    since_us: int | None = None
    kinds: tuple[str, ...] = ()
    min_disk_free_bytes: int | None = None
    max_clock_offset_ms: int | None = None
    selftests: tuple[tuple[int, bool], ...] = ()
    selftest_missing_until_us: int | None = None
    selftest_age_max_us: int = 0

    def as_json(self) -> dict[str, object]:
        if self.count == 0:
            return {"prev": self.prev, "count": 0}
        return {"prev": self.prev, "count": self.count, "since_us": self.since_us, "kinds": list(self.kinds),
                "min_disk_free_bytes": self.min_disk_free_bytes, "max_clock_offset_ms": self.max_clock_offset_ms,
                "selftests": [[at, ok] for at, ok in self.selftests],
                "selftest_missing_until_us": self.selftest_missing_until_us,
                "selftest_age_max_us": self.selftest_age_max_us}


class ProvinceIn(NamedTuple):
    code: str
    name: str


class SiteIn(NamedTuple):
    id: int
    code: str
    name: str
    province_code: str
    facility_type: str


class RoomIn(NamedTuple):
    id: int
    site_id: int
    code: str
    name: str


class StationIn(NamedTuple):
    station_id: str
    room_id: int | None
    revoked: bool = False


class RoomStatus(NamedTuple):
    room: RoomIn
    site: SiteIn
    working: bool
    reasons: tuple[Reason, ...]
    station_id: str | None = None
    last_seen_us: int | None = None


class SiteStatus(NamedTuple):
    site: SiteIn
    rooms_total: int
    rooms_working: int

    @property
    def equipped(self) -> bool:
        return self.rooms_working > 0


@dataclass(frozen=True)
class Figures:
    facilities_total: int
    facilities_equipped: int
    rooms_total: int
    rooms_working: int

    @property
    def facility_ratio(self) -> float | None:
        return self.facilities_equipped / self.facilities_total if self.facilities_total else None

    @property
    def room_ratio(self) -> float | None:
        return self.rooms_working / self.rooms_total if self.rooms_total else None

    def as_json(self) -> dict[str, object]:
        return {"facilities_total": self.facilities_total, "facilities_equipped": self.facilities_equipped,
                "facility_ratio": self.facility_ratio, "rooms_total": self.rooms_total,
                "rooms_working": self.rooms_working, "room_ratio": self.room_ratio}


@dataclass(frozen=True)
class ProvinceFigures:
    province: ProvinceIn
    figures: Figures


@dataclass(frozen=True)
class Coverage:
    now_us: int
    figures: Figures
    provinces: tuple[ProvinceFigures, ...]
    sites: tuple[SiteStatus, ...]
    rooms: tuple[RoomStatus, ...]
    silent_stations: tuple[str, ...] = field(default=())
    """Enrolled stations whose last heartbeat is older than two intervals (or that never reported)."""

    @property
    def failing(self) -> tuple[RoomStatus, ...]:
        return tuple(r for r in self.rooms if not r.working)


def _typed(value: object, kind: type, where: str, optional: bool = True) -> Any:
    if value is None and optional:
        return None
    if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
        raise ValueError(f"heartbeat member {where} is not {'an integer' if kind is int else kind.__name__}")
    return value


def run_from_doc(value: object) -> RunClaim | None:
    """The `run` member of a heartbeat body (parsed JSON), strictly: a member of the wrong type is a ValueError
    naming it; None when the body has none."""
    if value is None:
        return None
    run = _typed(value, dict, "run")
    prev = _typed(run.get("prev"), str, "run.prev")
    if prev is not None and (len(prev) != 64 or any(c not in "0123456789abcdef" for c in prev)):
        raise ValueError("heartbeat member run.prev is not a SHA-256 in lowercase hex")
    count = _typed(run.get("count"), int, "run.count", optional=False)
    if count < 0:
        raise ValueError("heartbeat member run.count is negative")
    if count == 0:
        return RunClaim(prev, 0)
    kinds = _typed(run.get("kinds"), list, "run.kinds", optional=False)
    selftests = []
    for i, s in enumerate(_typed(run.get("selftests"), list, "run.selftests", optional=False)):
        if not (isinstance(s, list) and len(s) == 2):
            raise ValueError(f"heartbeat member run.selftests[{i}] is not [at_us, ok]")
        selftests.append((_typed(s[0], int, f"run.selftests[{i}][0]", False),
                          _typed(s[1], bool, f"run.selftests[{i}][1]", False)))
    return RunClaim(
        prev, count, _typed(run.get("since_us"), int, "run.since_us", optional=False),
        tuple(_typed(k, str, f"run.kinds[{i}]", False) for i, k in enumerate(kinds)),
        _typed(run.get("min_disk_free_bytes"), int, "run.min_disk_free_bytes"),
        _typed(run.get("max_clock_offset_ms"), int, "run.max_clock_offset_ms"), tuple(selftests),
        _typed(run.get("selftest_missing_until_us"), int, "run.selftest_missing_until_us"),
        _typed(run.get("selftest_age_max_us", 0), int, "run.selftest_age_max_us", optional=False))


def facts_from_doc(doc: Mapping[str, Any], received_us: int, enrolled_at_us: int | None = None) -> HeartbeatFacts:
    """What a heartbeat document (`irms.heartbeat/1`, parsed JSON) says, as coverage needs it.

    Strict: a member of the wrong type is a ValueError naming it (the server's ingest refuses such a
    body; the offline checker refuses the heartbeat)."""
    if doc.get("format") != "irms.heartbeat/1":
        raise ValueError("not an irms.heartbeat/1 document")
    probes = []
    for i, p in enumerate(_typed(doc.get("probes", []), list, "probes") or []):
        if not isinstance(p, dict):
            raise ValueError(f"heartbeat member probes[{i}] is not an object")
        probes.append(Probe(_typed(p.get("check"), str, f"probes[{i}].check", optional=False),
                            _typed(p.get("device", ""), str, f"probes[{i}].device") or "",
                            _typed(p.get("ok"), bool, f"probes[{i}].ok", optional=False),
                            _typed(p.get("reason", ""), str, f"probes[{i}].reason") or ""))
    selftest = _typed(doc.get("selftest"), dict, "selftest")
    return HeartbeatFacts(
        sent_us=_typed(doc.get("sent_at_us"), int, "sent_at_us", optional=False), received_us=received_us,
        probes=tuple(probes), disk_free_bytes=_typed(doc.get("disk_free_bytes"), int, "disk_free_bytes"),
        clock_offset_ms=_typed(doc.get("clock_offset_ms"), int, "clock_offset_ms"),
        store_ok=_typed(doc.get("store_ok"), bool, "store_ok"),
        selftest_at_us=None if selftest is None else _typed(selftest.get("at_us"), int, "selftest.at_us", False),
        selftest_ok=None if selftest is None else _typed(selftest.get("ok"), bool, "selftest.ok", False),
        enrolled_at_us=enrolled_at_us, run=run_from_doc(doc.get("run")))


def judge_heartbeat(hb: HeartbeatFacts, policy: Policy) -> list[Reason]:
    """Everything a heartbeat itself says is wrong (freshness is judged against `now` elsewhere).

    A heartbeat carrying its stored verdict is not judged again.
    """
    if hb.verdict is not None:
        return list(hb.verdict)
    found: list[Reason] = []
    kinds_ok: set[str] = set()
    for p in hb.probes:
        if p.ok:
            kinds_ok.add(p.kind)
        elif p.kind not in ("disk", "clock", "store"):
            found.append(reason("probe_failed", check=p.check, device=p.device, detail=p.reason))
    failed_kinds = {p.kind for p in hb.probes if not p.ok}
    for kind in policy.required_probe_kinds:
        if kind not in kinds_ok and kind not in failed_kinds:
            found.append(reason("probe_missing", kind=kind))
    if hb.store_ok is False or any(p.kind == "store" and not p.ok for p in hb.probes):
        found.append(reason("store_unreachable"))
    if hb.disk_free_bytes is None:
        found.append(reason("disk_unknown"))
    elif hb.disk_free_bytes < policy.min_disk_free_bytes:
        found.append(reason("disk_low", free_gib=f"{hb.disk_free_bytes / 2**30:.1f}",
                            min_gib=f"{policy.min_disk_free_bytes / 2**30:.1f}"))
    if policy.selftest_max_age_s:
        found.extend(judge_selftest(hb, policy))
    if hb.clock_offset_ms is None:
        found.append(reason("clock_unknown"))
    elif abs(hb.clock_offset_ms) > policy.clock_tolerance_s * 1000:
        found.append(reason("clock_off", offset_s=f"{hb.clock_offset_ms / 1000:+.1f}",
                            tolerance_s=policy.clock_tolerance_s))
    return found


def judge_selftest(hb: HeartbeatFacts, policy: Policy) -> list[Reason]:
    """R19: the latest self-test the heartbeat reports must have passed and be no older than the policy's
    age; a station still in its grace period after enrolment needs none yet (a failed one still counts)."""
    in_grace = hb.enrolled_at_us is not None and hb.at_us - hb.enrolled_at_us < policy.selftest_grace_s * US
    if hb.selftest_at_us is None:
        return [] if in_grace else [reason("selftest_missing")]
    if not hb.selftest_ok:
        return [reason("selftest_failed")]
    if hb.at_us - hb.selftest_at_us > policy.selftest_max_age_s * US and not in_grace:
        return [reason("selftest_stale", hours=(hb.at_us - hb.selftest_at_us) // (3600 * US))]
    return []


def room_status(room: RoomIn, site: SiteIn, stations: Sequence[StationIn],
                latest: Mapping[str, HeartbeatFacts], now_us: int, policy: Policy) -> RoomStatus:
    """Judge one room from its stations and their latest heartbeats."""
    if not stations:
        return RoomStatus(room, site, False, (reason("no_station"),))
    active = [s for s in stations if not s.revoked]
    if not active:
        return RoomStatus(room, site, False, (reason("station_revoked", station=stations[-1].station_id),))
    best: RoomStatus | None = None
    for st in active:
        hb = latest.get(st.station_id)
        if hb is None:
            status = RoomStatus(room, site, False, (reason("never_reported", station=st.station_id),),
                                st.station_id)
        else:
            reasons: list[Reason] = []
            age_us = now_us - hb.at_us
            if age_us > policy.fresh_us:
                reasons.append(reason("silent", station=st.station_id, minutes=age_us // (60 * US)))
            reasons.extend(judge_heartbeat(hb, policy))
            status = RoomStatus(room, site, not reasons, tuple(reasons), st.station_id, hb.at_us)
        if status.working:
            return status
        if best is None or (status.last_seen_us or 0) > (best.last_seen_us or 0):
            best = status
    assert best is not None
    return best


def compute_coverage(provinces: Iterable[ProvinceIn], sites: Iterable[SiteIn], rooms: Iterable[RoomIn],
                     stations: Iterable[StationIn], latest: Mapping[str, HeartbeatFacts], now_us: int,
                     policy: Policy) -> Coverage:
    """Rooms working now, facilities equipped, per province, with the reason for every failing room."""
    province_list = sorted(provinces, key=lambda p: p.code)
    site_list = sorted(sites, key=lambda s: (s.province_code, s.code))
    site_by_id = {s.id: s for s in site_list}
    by_room: dict[int, list[StationIn]] = defaultdict(list)
    for st in stations:
        if st.room_id is not None:
            by_room[st.room_id].append(st)
    room_list = sorted((r for r in rooms if r.site_id in site_by_id),
                       key=lambda r: (site_by_id[r.site_id].province_code, site_by_id[r.site_id].code, r.code))
    statuses = tuple(room_status(r, site_by_id[r.site_id], by_room.get(r.id, ()), latest, now_us, policy)
                     for r in room_list)
    total: dict[int, int] = defaultdict(int)
    working: dict[int, int] = defaultdict(int)
    for rs in statuses:
        total[rs.room.site_id] += 1
        working[rs.room.site_id] += rs.working
    site_statuses = tuple(SiteStatus(s, total[s.id], working[s.id]) for s in site_list)

    def figures(selected: Sequence[SiteStatus]) -> Figures:
        return Figures(len(selected), sum(1 for s in selected if s.equipped),
                       sum(s.rooms_total for s in selected), sum(s.rooms_working for s in selected))

    per_province = tuple(
        ProvinceFigures(p, figures([s for s in site_statuses if s.site.province_code == p.code]))
        for p in province_list)
    silent = []
    for st in stations:
        if st.revoked or st.room_id is None:
            continue
        hb = latest.get(st.station_id)
        if hb is None or now_us - hb.at_us > policy.fresh_us:
            silent.append(st.station_id)
    return Coverage(now_us, figures(site_statuses), per_province, site_statuses, statuses, tuple(sorted(silent)))


# --- history: uptime spans and the 30-day trend --------------------------------------------------


class Span(NamedTuple):
    """Time during which a room was working according to its heartbeats: [start_us, end_us)."""

    room_id: int
    start_us: int
    end_us: int


def judge_run(run: RunClaim, enrolled_at_us: int | None, policy: Policy) -> list[Reason]:
    """What the policy finds wrong with a run as its summary tells it (judge_heartbeat's rules over the worst of
    the run); empty: the whole run was ok under `policy`."""
    found: list[Reason] = []
    for kind in policy.required_probe_kinds:
        if kind not in run.kinds:
            found.append(reason("run_probe_missing", kind=kind))
    if run.min_disk_free_bytes is None or run.min_disk_free_bytes < policy.min_disk_free_bytes:
        found.append(reason("run_disk_low"))
    if run.max_clock_offset_ms is None or abs(run.max_clock_offset_ms) > policy.clock_tolerance_s * 1000:
        found.append(reason("run_clock_off"))
    if policy.selftest_max_age_s:
        if any(not ok for _, ok in run.selftests):
            found.append(reason("run_selftest_failed"))
        if run.selftest_age_max_us > policy.selftest_max_age_s * US:
            found.append(reason("run_selftest_stale"))
        missing = run.selftest_missing_until_us
        if missing is not None and (enrolled_at_us is None
                                    or missing - enrolled_at_us >= policy.selftest_grace_s * US):
            found.append(reason("run_selftest_missing"))
    return found


class Credit(NamedTuple):
    """What one heartbeat credits its room with: [start_us, end_us) of working time, or a refusal of its run."""

    span: tuple[int, int] | None
    refused: str | None = None
    """The run claim's refusal code (docs/evidence-format.md, "Refused run claims"), None if not refused."""
    why: str = ""


NO_CREDIT = Credit(None)


def run_credit(hb: HeartbeatFacts, ok: bool, policy: Policy, enrolled_at_us: int | None,
               failures: Sequence[int] = (), failing_bodies: Container[str] = ()) -> Credit:
    """The one credit rule (server ingest and offline checker): an ok heartbeat credits `[since_us, at_us)` of
    the run it signed, if that run's claim holds and its summary passes the policy; nothing else credits time.

    `failures` are the at_us (sorted) of the station's heartbeats known not to be ok, `failing_bodies` their
    bodies' SHA-256: one inside the claimed run contradicts it. The credit depends on no other heartbeat
    otherwise, so leaving any heartbeat out can only lower the figure."""
    run = hb.run
    if not ok or run is None or run.count < 1 or run.since_us is None:
        return NO_CREDIT
    at, since = hb.at_us, run.since_us
    if enrolled_at_us is not None and since < enrolled_at_us:
        return Credit(None, "run_before_enrolment", f"its run starts at {since}, before the station's enrolment")
    if at - since > (run.count - 1) * policy.fresh_us:
        return Credit(None, "run_too_long", f"its run of {run.count} heartbeats claims {(at - since) // US} s, more "
                                            f"than two intervals between each")
    i = bisect_left(failures, since)
    if i < len(failures) and failures[i] < at:
        return Credit(None, "run_contradicted", f"a heartbeat of this station that was not ok, at {failures[i]}, "
                                                f"lies inside its run")
    if run.count > 1 and run.prev is not None and run.prev in failing_bodies:
        return Credit(None, "run_contradicted", "its run continues from a heartbeat that was not ok")
    if judge_run(run, enrolled_at_us, policy):
        return Credit(None, "run_policy", "its run summary fails the policy: "
                      + ", ".join(r.code for r in judge_run(run, enrolled_at_us, policy)))
    return Credit((since, at)) if at >= since else NO_CREDIT


@dataclass(frozen=True)
class SpanUpdate:
    """What one heartbeat's credit does to the station's open span (the run being credited)."""

    action: str  # "extend", "open", "past", "close", "none"
    start_us: int = 0
    end_us: int = 0


def advance_span(open_span: tuple[int, int] | None, credit: tuple[int, int] | None, ok: bool,
                 at_us: int) -> SpanUpdate:
    """The server's spans from credits, one heartbeat at a time: a credit of the open span's run extends it; a
    credit of a later run opens a new span (closing the open one); one of an earlier run (a heartbeat queued
    and delivered late) is a closed span of its own; a heartbeat that is not ok closes the open span (unless it
    is older than the span: delivered late). The union
    of the spans is the union of the credits (what `spans_from_credits` gives the checker)."""
    if credit is None:
        closes = not ok and open_span is not None and at_us >= open_span[0]
        return SpanUpdate("close") if closes else SpanUpdate("none")
    start, end = credit
    if open_span is not None and start == open_span[0]:
        return SpanUpdate("extend", start, max(open_span[1], end))
    if open_span is not None and start < open_span[0]:
        return SpanUpdate("past", start, end)
    return SpanUpdate("open", start, end)


def spans_from_credits(room_id: int, credits: Iterable[tuple[int, int]]) -> list[Span]:
    return [Span(room_id, start, end) for start, end in credits]


@dataclass(frozen=True)
class RunState:
    """What a station keeps between heartbeats to build `run` (recorder/heartbeat.py keeps it durable)."""

    last_sent_us: int | None = None
    last_hash: str | None = None
    run: RunClaim | None = None

    def as_json(self) -> dict[str, object]:
        return {"last_sent_us": self.last_sent_us, "last_hash": self.last_hash,
                "run": None if self.run is None else self.run.as_json()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunState:
        return cls(doc.get("last_sent_us"), doc.get("last_hash"), run_from_doc(doc.get("run")))

    def after(self, run: RunClaim, sent_us: int, body: bytes) -> RunState:
        """The state once the heartbeat with `run` and these exact body bytes was built."""
        return RunState(sent_us, hashlib.sha256(body).hexdigest(), run if run.count else None)


def next_run(state: RunState | None, doc: Mapping[str, Any], policy: Policy,
             enrolled_at_us: int | None) -> RunClaim:
    """The station's rule: the `run` of the heartbeat `doc` (without its `run`) after `state`. The heartbeat is ok
    when `judge_heartbeat` with the policy finds nothing; an ok one continues the run unless there is none, the
    previous heartbeat is older than two intervals, or the run so far would fail the policy (`judge_run`: the
    policy became stricter); one not ok is in no run."""
    state = state or RunState()
    facts = facts_from_doc({k: v for k, v in doc.items() if k != "run"}, doc["sent_at_us"], enrolled_at_us)
    if judge_heartbeat(facts, policy):
        return RunClaim(state.last_hash, 0)
    sent = facts.sent_us
    cur = state.run
    fresh = RunClaim(state.last_hash, 0, sent, tuple(sorted({p.kind for p in facts.probes if p.ok})),
                     facts.disk_free_bytes, 0, (), None, 0)
    if cur is None or state.last_sent_us is None or not 0 <= sent - state.last_sent_us <= policy.fresh_us:
        cur = fresh
    run = _grow(cur, facts, state.last_hash, policy, enrolled_at_us)
    if cur is not fresh and judge_run(run, enrolled_at_us, policy):  # e.g. a stricter policy than before
        run = _grow(fresh, facts, state.last_hash, policy, enrolled_at_us)
    return run


def _grow(cur: RunClaim, facts: HeartbeatFacts, prev: str | None, policy: Policy,
          enrolled_at_us: int | None) -> RunClaim:
    """The run `cur` with the ok heartbeat `facts` added."""
    sent = facts.sent_us
    kinds = tuple(k for k in cur.kinds if any(p.ok and p.kind == k for p in facts.probes))
    clock = facts.clock_offset_ms or 0
    selftests = cur.selftests
    missing, age = cur.selftest_missing_until_us, cur.selftest_age_max_us
    if facts.selftest_at_us is None:
        missing = sent
    else:
        if not selftests or selftests[-1] != (facts.selftest_at_us, bool(facts.selftest_ok)):
            selftests = (*selftests, (facts.selftest_at_us, bool(facts.selftest_ok)))
        in_grace = enrolled_at_us is not None and sent - enrolled_at_us < policy.selftest_grace_s * US
        if not in_grace:
            age = max(age, sent - facts.selftest_at_us)
    disk = facts.disk_free_bytes if cur.min_disk_free_bytes is None or facts.disk_free_bytes is None else min(
        cur.min_disk_free_bytes, facts.disk_free_bytes)
    return RunClaim(prev, cur.count + 1, cur.since_us, kinds, disk,
                    max(abs(cur.max_clock_offset_ms or 0), abs(clock)), selftests, missing, age)


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _spread(merged: Sequence[tuple[int, int]], lo: Sequence[int], hi: Sequence[int], acc: list[int]) -> int:
    """Add each interval's overlap with day i to acc[i]; return the total inside the window.

    Days are contiguous and sorted, so each interval only visits the days it touches.
    """
    total = 0
    n = len(lo)
    for start, end in merged:
        i = max(bisect_right(lo, start) - 1, 0)
        while i < n and lo[i] < end:
            ov = min(end, hi[i]) - max(start, lo[i])
            if ov > 0:
                acc[i] += ov
                total += ov
            i += 1
    return total


@dataclass(frozen=True)
class DayPoint:
    day: dt.date
    room_uptime: float | None
    """Mean over rooms of the share of the day each was working."""
    facility_equipped: float | None
    """Mean over facilities of the share of the day at least one of its rooms was working."""


@dataclass(frozen=True)
class Trend:
    days: tuple[DayPoint, ...]
    room_uptime: Mapping[int, float]
    """Each room's share of the whole window it was working."""
    province_uptime: Mapping[str, float | None]


def day_bounds(now_us: int, days: int, tz: dt.tzinfo) -> list[tuple[dt.date, int, int]]:
    """The last `days` local calendar days ending today, as (date, start_us, end_us) with today cut at now."""
    now = dt.datetime.fromtimestamp(now_us / US, tz)
    today = now.date()
    out = []
    for back in range(days - 1, -1, -1):
        d = today - dt.timedelta(days=back)
        start = dt.datetime(d.year, d.month, d.day, tzinfo=tz)
        lo = int(start.timestamp()) * US
        hi = min(lo + DAY_US, now_us)
        out.append((d, lo, hi))
    return out


@dataclass(frozen=True)
class UptimeSums:
    """Working time summed over some days: per day over all rooms and all sites, and per room."""

    bounds: tuple[tuple[dt.date, int, int], ...]
    room_day_us: tuple[int, ...]
    site_day_us: tuple[int, ...]
    room_us: Mapping[int, int]


def accumulate_uptime(sites: Sequence[SiteIn], rooms: Sequence[RoomIn], spans: Iterable[Span],
                      bounds: Sequence[tuple[dt.date, int, int]], now_us: int) -> UptimeSums:
    """Sum each room's and each site's working time (the union of its rooms') into the days of `bounds`."""
    by_room: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for sp in spans:
        by_room[sp.room_id].append((sp.start_us, min(sp.end_us, now_us)))
    room_merged = {rid: _merge(ivs) for rid, ivs in by_room.items()}
    rooms_of_site: dict[int, list[int]] = defaultdict(list)
    for r in rooms:
        if r.id in room_merged:
            rooms_of_site[r.site_id].append(r.id)
    lo = [b[1] for b in bounds]
    hi = [b[2] for b in bounds]
    room_acc = [0] * len(bounds)
    site_acc = [0] * len(bounds)
    room_us = {rid: _spread(merged, lo, hi, room_acc) for rid, merged in room_merged.items()}
    for s in sites:
        ids = rooms_of_site.get(s.id, ())
        if not ids:
            continue
        merged = room_merged[ids[0]] if len(ids) == 1 else _merge(iv for rid in ids for iv in room_merged[rid])
        _spread(merged, lo, hi, site_acc)
    return UptimeSums(tuple(bounds), tuple(room_acc), tuple(site_acc), room_us)


def trend_from(parts: Sequence[UptimeSums], sites: Sequence[SiteIn], rooms: Sequence[RoomIn],
               now_us: int) -> Trend:
    """Join consecutive sums (e.g. past days, cached, and today, live) into the trend."""
    points = []
    for part in parts:
        for (d, day_lo, day_hi), room_up_us, site_up_us in zip(part.bounds, part.room_day_us, part.site_day_us,
                                                                strict=True):
            length = day_hi - day_lo
            room_up = room_up_us / (length * len(rooms)) if length > 0 and rooms else None
            fac_up = site_up_us / (length * len(sites)) if length > 0 and sites else None
            points.append(DayPoint(d, room_up, fac_up))
    first = next((p.bounds[0][1] for p in parts if p.bounds), now_us)
    window = max(now_us - first, 1)
    room_uptime = {r.id: sum(p.room_us.get(r.id, 0) for p in parts) / window for r in rooms}
    site_province = {s.id: s.province_code for s in sites}
    per_prov: dict[str, list[float]] = defaultdict(list)
    for r in rooms:
        if r.site_id in site_province:
            per_prov[site_province[r.site_id]].append(room_uptime[r.id])
    province_uptime: dict[str, float | None] = {
        code: (sum(v) / len(v) if v else None) for code, v in per_prov.items()}
    return Trend(tuple(points), room_uptime, province_uptime)


def compute_trend(sites: Iterable[SiteIn], rooms: Iterable[RoomIn], spans: Iterable[Span], now_us: int,
                  days: int, tz: dt.tzinfo) -> Trend:
    """Uptime per local day over the last `days` days from working spans (clipped at now)."""
    site_list, room_list = list(sites), list(rooms)
    sums = accumulate_uptime(site_list, room_list, spans, day_bounds(now_us, days, tz), now_us)
    return trend_from([sums], site_list, room_list, now_us)
